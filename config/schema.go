package config

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// This file checks a document against the shape of Config before it is
// decoded, with go-toml's unstable parser: it reports unknown keys and values
// of the wrong type (all of them, each with its line), and records the line of
// every key so that later problems can name their line too.

// kind is the kind of value a key of Config takes.
type kind uint8

const (
	kindString kind = iota + 1
	kindBool
	kindTable
	kindArray
)

// schema is the shape of one key of Config.
type schema struct {
	kind   kind
	fields map[string]*schema // kindTable: the keys of the table
	names  []string           // kindTable: the keys, in the order of the struct
	elem   *schema            // kindArray: the elements
	where  string             // kindTable: where its keys go, like "in the [proxy] table"
}

// rootSchema is the shape of the settings file, read from Config's toml tags so
// that the two cannot drift apart.
var rootSchema = schemaOf(reflect.TypeFor[Config](), "")

func schemaOf(t reflect.Type, key string) *schema {
	switch t.Kind() {
	case reflect.String:
		return &schema{kind: kindString}
	case reflect.Bool:
		return &schema{kind: kindBool}
	case reflect.Slice:
		return &schema{kind: kindArray, elem: schemaOf(t.Elem(), key+"[]")}
	case reflect.Struct:
		s := &schema{kind: kindTable, fields: map[string]*schema{}}
		switch {
		case key == "":
			s.where = "at the top level, before the first [table] header"
		case strings.HasSuffix(key, "[]"):
			s.where = "in a [[" + strings.TrimSuffix(key, "[]") + "]] table"
		default:
			s.where = "in the [" + key + "] table"
		}
		for f := range t.Fields() {
			name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
			sub := name
			if key != "" {
				sub = key + "." + name
			}
			s.fields[name] = schemaOf(f.Type, sub)
			s.names = append(s.names, name)
		}
		return s
	default:
		panic("config: no schema for " + t.String())
	}
}

// describe names what s expects, for messages.
func (s *schema) describe() string {
	switch s.kind {
	case kindString:
		return "a string"
	case kindBool:
		return "a boolean (true or false)"
	case kindTable:
		return "a table"
	default:
		if s.elem.kind == kindTable {
			return "an array of tables"
		}
		return "an array of strings"
	}
}

// kindName names the kind of a TOML value node, for messages.
func kindName(n *unstable.Node) string {
	switch n.Kind {
	case unstable.String:
		return "string"
	case unstable.Bool:
		return "boolean"
	case unstable.Integer:
		return "integer"
	case unstable.Float:
		return "float"
	case unstable.LocalDate:
		return "date"
	case unstable.LocalTime:
		return "time"
	case unstable.LocalDateTime, unstable.DateTime:
		return "date-time"
	case unstable.Array:
		return "array"
	case unstable.InlineTable:
		return "table"
	default:
		return strings.ToLower(n.Kind.String())
	}
}

// seg is one step of a key path: a table key, or an array index when elem is set.
type seg struct {
	name  string
	index int
	elem  bool
}

// path is a key path, like proxy.routes[1].name.
type path []seg

func (p path) String() string {
	var b strings.Builder
	for _, s := range p {
		if s.elem {
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(s.index))
			b.WriteByte(']')
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		if bareKey(s.name) {
			b.WriteString(s.name)
		} else {
			b.WriteString(strconv.Quote(s.name))
		}
	}
	return b.String()
}

// with returns a copy of p with s appended, so that paths never share storage.
func (p path) with(s seg) path {
	return append(slices.Clip(p), s)
}

func bareKey(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// position is where a key or value starts in the document.
type position struct {
	line, col int
}

// positions maps dotted keys (path.String()) to where they first appear.
type positions map[string]position

// of returns the position of key, or of its closest enclosing key in the file.
func (ps positions) of(key string) position {
	for key != "" {
		if p, ok := ps[key]; ok {
			return p
		}
		i := strings.LastIndexAny(key, ".[")
		if i < 0 {
			break
		}
		key = key[:i]
	}
	return position{}
}

// scan is the state of one pass over a document.
type scan struct {
	file       string
	data       []byte
	lineStarts []int
	pos        positions
	leaves     positions      // key-values set, to report keys set twice
	arrays     map[string]int // [[array tables]] seen so far, by key
	reported   map[string]bool
	errs       []*Error
}

// scanDocument checks data against the shape of Config. It returns where
// every key is, and the problems found: one syntax error, or every unknown key
// and value of the wrong type.
func scanDocument(data []byte, file string) (positions, []*Error) {
	s := &scan{
		file:     file,
		data:     data,
		pos:      positions{},
		leaves:   positions{},
		arrays:   map[string]int{},
		reported: map[string]bool{},
	}
	s.lineStarts = append(s.lineStarts, 0)
	for i, c := range data {
		if c == '\n' {
			s.lineStarts = append(s.lineStarts, i+1)
		}
	}

	var p unstable.Parser
	p.Reset(data)
	var table path
	for p.NextExpression() {
		expr := p.Expression()
		switch expr.Kind {
		case unstable.KeyValue:
			s.keyValue(table, expr)
		case unstable.Table:
			table = s.table(expr)
		case unstable.ArrayTable:
			table = s.arrayTable(expr)
		}
	}
	if err := p.Error(); err != nil {
		return nil, []*Error{s.syntaxError(err)}
	}
	return s.pos, s.errs
}

// syntaxError turns a parser error into an Error with its position.
func (s *scan) syntaxError(err error) *Error {
	e := &Error{File: s.file, Msg: "syntax error: " + err.Error()}
	var perr *unstable.ParserError
	if errors.As(err, &perr) {
		if at, ok := s.offsetOf(perr.Highlight); ok {
			p := s.at(at)
			e.Line, e.Column = p.line, p.col
			e.Msg = fmt.Sprintf("syntax error at column %d: %s", p.col, perr.Message)
		}
		if len(perr.Key) > 0 {
			e.Key = keyString(perr.Key)
		}
	}
	return e
}

// offsetOf returns the offset in the document of b, a subslice of it.
func (s *scan) offsetOf(b []byte) (int, bool) {
	off := cap(s.data) - cap(b)
	if b == nil || off < 0 || off > len(s.data) {
		return 0, false
	}
	return off, true
}

// at returns the position of an offset.
func (s *scan) at(offset int) position {
	line := sort.Search(len(s.lineStarts), func(i int) bool { return s.lineStarts[i] > offset })
	return position{line: line, col: offset - s.lineStarts[line-1] + 1}
}

// nodePos returns where n starts, or def when the parser gave n no range
// (arrays and table headers have none).
func (s *scan) nodePos(n *unstable.Node, def position) position {
	if n.Raw.Length == 0 {
		return def
	}
	return s.at(int(n.Raw.Offset))
}

// keyPart is one part of a dotted key, with its position.
type keyPart struct {
	name string
	pos  position
}

func (s *scan) keyParts(n *unstable.Node) []keyPart {
	var parts []keyPart
	it := n.Key()
	for it.Next() {
		k := it.Node()
		parts = append(parts, keyPart{name: string(k.Data), pos: s.nodePos(k, position{})})
	}
	return parts
}

// record remembers where key p first appears.
func (s *scan) record(p path, at position) {
	k := p.String()
	if _, ok := s.pos[k]; !ok {
		s.pos[k] = at
	}
}

// header resolves the key of a table header: a part naming an array of tables
// stands for its last element, as in TOML.
func (s *scan) header(parts []keyPart) path {
	var p path
	for _, k := range parts {
		p = p.with(seg{name: k.name})
		s.record(p, k.pos)
		if n := s.arrays[p.String()]; n > 0 {
			p = p.with(seg{index: n - 1, elem: true})
		}
	}
	return p
}

// table handles a [table] header and returns the table's path.
func (s *scan) table(n *unstable.Node) path {
	parts := s.keyParts(n)
	p := s.header(parts)
	at := parts[len(parts)-1].pos
	if sc := s.lookup(p, at); sc != nil && sc.kind != kindTable {
		hint := ""
		if sc.kind == kindArray && sc.elem.kind == kindTable {
			hint = fmt.Sprintf(": write [[%s]], with double brackets, for each element", p)
		}
		s.mismatch(p, sc, "table"+hint, at)
	}
	return p
}

// arrayTable handles an [[array table]] header and returns the new element's path.
func (s *scan) arrayTable(n *unstable.Node) path {
	parts := s.keyParts(n)
	last := parts[len(parts)-1]
	p := s.header(parts[:len(parts)-1]).with(seg{name: last.name})
	s.record(p, last.pos)
	k := p.String()
	i := s.arrays[k]
	s.arrays[k] = i + 1
	if sc := s.lookup(p, last.pos); sc != nil && (sc.kind != kindArray || sc.elem.kind != kindTable) {
		s.mismatch(p, sc, "array of tables", last.pos)
	}
	p = p.with(seg{index: i, elem: true})
	s.record(p, last.pos)
	return p
}

// keyValue handles key = value, in table or in an inline table at table.
func (s *scan) keyValue(table path, n *unstable.Node) {
	parts := s.keyParts(n)
	p := table
	for _, k := range parts {
		p = p.with(seg{name: k.name})
		s.record(p, k.pos)
	}
	at := parts[len(parts)-1].pos
	key := p.String()
	if first, ok := s.leaves[key]; ok {
		s.fail(p, at, fmt.Sprintf("%s is set twice (first on line %d): keep one", key, first.line))
		return
	}
	s.leaves[key] = at
	s.value(p, n.Value(), at)
}

// value checks the value n of key p.
func (s *scan) value(p path, n *unstable.Node, at position) {
	sc := s.lookup(p, at)
	if sc == nil {
		return
	}
	switch n.Kind {
	case unstable.Array:
		if sc.kind != kindArray {
			s.mismatch(p, sc, "array", at)
			return
		}
		i := 0
		for it := n.Children(); it.Next(); i++ {
			e := it.Node()
			ep := p.with(seg{index: i, elem: true})
			epos := s.nodePos(e, at)
			s.record(ep, epos)
			s.value(ep, e, epos)
		}
	case unstable.InlineTable:
		if sc.kind != kindTable {
			s.mismatch(p, sc, "table", at)
			return
		}
		for it := n.Children(); it.Next(); {
			s.keyValue(p, it.Node())
		}
	case unstable.String:
		if sc.kind != kindString {
			s.mismatch(p, sc, "string", at)
		}
	case unstable.Bool:
		if sc.kind != kindBool {
			s.mismatch(p, sc, "boolean", at)
		}
	default:
		s.mismatch(p, sc, kindName(n), at)
	}
}

// lookup returns the schema of key p, or nil after reporting why p is not a key
// of Config (an unknown key, or a key used as a table that is not one).
func (s *scan) lookup(p path, at position) *schema {
	sc := rootSchema
	for i, sg := range p {
		if sg.elem {
			if sc.kind != kindArray {
				s.mismatch(p[:i], sc, "array", at)
				return nil
			}
			sc = sc.elem
			continue
		}
		if sc.kind != kindTable {
			got := "table"
			if sc.kind == kindArray && sc.elem.kind == kindTable {
				got = fmt.Sprintf("table: write [[%s]], with double brackets, for each element", p[:i])
			}
			s.mismatch(p[:i], sc, got, at)
			return nil
		}
		f := sc.fields[sg.name]
		if f == nil {
			s.unknown(p[:i+1], sc, at)
			return nil
		}
		sc = f
	}
	return sc
}

// mismatch reports that key p holds a value of the wrong kind.
func (s *scan) mismatch(p path, want *schema, got string, at position) {
	hint := ""
	if want.kind == kindArray && want.elem.kind == kindString && got == "string" {
		hint = `: put it in brackets, like ["Mail.Read"]`
	}
	s.fail(p, at, fmt.Sprintf("%s: expected %s, got %s%s", p, want.describe(), got, hint))
}

// unknown reports that p is not a key of Config, suggesting the closest one.
func (s *scan) unknown(p path, in *schema, at position) {
	name := p[len(p)-1].name
	msg := fmt.Sprintf("unknown key %s", strconv.Quote(p.String()))
	if best := closest(name, in.names); best != "" {
		msg += fmt.Sprintf(" (did you mean %s?)", strconv.Quote(best))
	} else if where := elsewhere(name, in); where != "" {
		msg += fmt.Sprintf(": %s belongs %s", name, where)
	} else {
		where, _, _ := strings.Cut(in.where, ",")
		msg += fmt.Sprintf(": remove it, or fix its spelling (the keys allowed %s are %s)", where, strings.Join(in.names, ", "))
	}
	s.fail(p, at, msg)
}

// fail records a problem at key p, unless one was already reported at p or
// at a key enclosing it.
func (s *scan) fail(p path, at position, msg string) {
	for i := 1; i <= len(p); i++ {
		if s.reported[p[:i].String()] {
			return
		}
	}
	key := p.String()
	s.reported[key] = true
	s.errs = append(s.errs, &Error{File: s.file, Line: at.line, Column: at.col, Key: key, Msg: msg})
}

// closest returns the name among names that name is most likely a typo of, or "".
func closest(name string, names []string) string {
	norm := func(s string) string {
		return strings.NewReplacer("_", "", "-", "", " ", "").Replace(strings.ToLower(s))
	}
	best, bestDist := "", 0
	for _, n := range names {
		if norm(n) == norm(name) {
			return n
		}
		limit := 2
		if len(n) <= 4 {
			limit = 1
		}
		if d := editDistance(strings.ToLower(name), n); d <= limit && (best == "" || d < bestDist) {
			best, bestDist = n, d
		}
	}
	return best
}

// elsewhere returns where name belongs when it is a key of another table than
// in, like "the [proxy] table", or "".
func elsewhere(name string, in *schema) string {
	var found string
	var walk func(sc *schema)
	walk = func(sc *schema) {
		switch sc.kind {
		case kindTable:
			if sc != in && found == "" {
				if _, ok := sc.fields[name]; ok {
					found = sc.where
				}
			}
			for _, n := range sc.names {
				walk(sc.fields[n])
			}
		case kindArray:
			walk(sc.elem)
		}
	}
	walk(rootSchema)
	return found
}

// editDistance is the number of edits (insertions, deletions, substitutions
// and swaps of neighbours) that turn a into b, in bytes.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return max(len(a), len(b))
	}
	// d[i][j] is the distance between a[:i] and b[:j].
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// keyString renders a key given as parts.
func keyString(parts []string) string {
	var p path
	for _, k := range parts {
		p = append(p, seg{name: k})
	}
	return p.String()
}
