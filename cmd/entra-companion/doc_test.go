package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// goPackages maps every package directory of the module (but scripts/ helpers with build-tag
// exclusions are included too) to its non-test Go files, parsed with comments.
func goPackages(t *testing.T) map[string][]*ast.File {
	pkgs, _ := parsePackages(t)
	return pkgs
}

func parsePackages(t *testing.T) (map[string][]*ast.File, *token.FileSet) {
	t.Helper()
	root := filepath.Join("..", "..")
	fset := token.NewFileSet()
	pkgs := map[string][]*ast.File{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); p != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "bin") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if strings.Contains(string(src), "//go:build ignore") {
			return nil // generators run with go run, not part of the package
		}
		f, err := parser.ParseFile(fset, p, src, parser.ParseComments)
		if err != nil {
			return err
		}
		dir := filepath.Dir(p)
		pkgs[dir] = append(pkgs[dir], f)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) < 8 {
		t.Fatalf("found only %d packages: is the walk rooted right?", len(pkgs))
	}
	return pkgs, fset
}

// Every package has exactly one package doc comment.
func TestEveryPackageHasOneDocComment(t *testing.T) {
	pkgs, fset := parsePackages(t)
	for dir, files := range pkgs {
		var with []string
		for _, f := range files {
			if f.Doc != nil && strings.TrimSpace(f.Doc.Text()) != "" {
				with = append(with, filepath.Base(fset.Position(f.Package).Filename))
			}
		}
		if len(with) != 1 {
			t.Errorf("package %s has %d package doc comments (%v), want exactly 1", dir, len(with), with)
		}
	}
}

// Every exported name has a doc comment.
func TestEveryExportedNameIsDocumented(t *testing.T) {
	var missing []string
	for dir, files := range goPackages(t) {
		for _, f := range files {
			if f.Name.Name == "main" {
				continue
			}
			for _, decl := range f.Decls {
				switch d := decl.(type) {
				case *ast.FuncDecl:
					if !d.Name.IsExported() || d.Doc != nil {
						continue
					}
					if d.Recv != nil && !exportedReceiver(d.Recv) {
						continue
					}
					missing = append(missing, dir+": func "+d.Name.Name)
				case *ast.GenDecl:
					for _, spec := range d.Specs {
						switch s := spec.(type) {
						case *ast.TypeSpec:
							if s.Name.IsExported() && d.Doc == nil && s.Doc == nil {
								missing = append(missing, dir+": type "+s.Name.Name)
							}
						case *ast.ValueSpec:
							for _, n := range s.Names {
								if n.IsExported() && d.Doc == nil && s.Doc == nil && s.Comment == nil {
									missing = append(missing, dir+": "+n.Name)
								}
							}
						}
					}
				}
			}
		}
	}
	sort.Strings(missing)
	for _, m := range missing {
		t.Errorf("undocumented exported name: %s", m)
	}
}

func exportedReceiver(recv *ast.FieldList) bool {
	if len(recv.List) == 0 {
		return false
	}
	typ := recv.List[0].Type
	if star, ok := typ.(*ast.StarExpr); ok {
		typ = star.X
	}
	if idx, ok := typ.(*ast.IndexExpr); ok {
		typ = idx.X
	}
	id, ok := typ.(*ast.Ident)
	return ok && id.IsExported()
}
