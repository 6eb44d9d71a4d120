package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics, is deterministic, returns either a
// valid config or only *Error problems in line order, and that any config it
// returns survives Save and Load unchanged. Seeds are in testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	if data, err := os.ReadFile("example.toml"); err == nil {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, "fuzz.toml")
		c2, err2 := Parse(data, "fuzz.toml")
		if (err == nil) != (err2 == nil) || err != nil && err.Error() != err2.Error() || !reflect.DeepEqual(c, c2) {
			t.Fatalf("Parse is not deterministic: %v / %v", err, err2)
		}
		if err != nil {
			if c != nil {
				t.Fatalf("Parse returned a config with the error %v", err)
			}
			checkProblems(t, err)
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse returned a config that does not validate: %v", err)
		}

		path := filepath.Join(t.TempDir(), "config.toml")
		if err := Save(path, c); err != nil {
			if errors.Is(err, errTooLarge) {
				return
			}
			t.Fatalf("Save() = %v", err)
		}
		back, err := Load(path)
		if err != nil {
			t.Fatalf("Load(Save(c)) = %v", err)
		}
		if !reflect.DeepEqual(back, c) {
			t.Fatalf("Load(Save(c)) =\n%+v\nwant\n%+v", back, c)
		}
	})
}

// checkProblems checks that err is made of *Error values, in line order, that
// name the file and report no bug.
func checkProblems(t *testing.T, err error) {
	t.Helper()
	list := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	}
	line := 0
	for _, e := range list {
		pe, ok := e.(*Error)
		if !ok {
			t.Fatalf("problem %T %v is not an *Error", e, e)
		}
		if pe.File != "fuzz.toml" || pe.Msg == "" {
			t.Fatalf("problem %+v does not name the file or has no message", pe)
		}
		if strings.Contains(pe.Msg, internalError) {
			t.Fatalf("bug: %v", pe)
		}
		if pe.Line > 0 && pe.Line < line {
			t.Fatalf("problems out of line order: %v", err)
		}
		line = max(line, pe.Line)
	}
}
