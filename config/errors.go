package config

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Error is one problem found in a settings file or a Config. Parse, Load, Save
// and Validate return every problem found, joined with errors.Join and sorted by
// line; use errors.As to get the first, or unwrap the join to get them all.
type Error struct {
	// File is the name of the settings file, "" when a Config was validated on its own.
	File string
	// Line is the 1-based line of the key or value at fault, 0 if unknown.
	Line int
	// Column is the 1-based column of the key or value at fault, 0 if unknown.
	Column int
	// Key is the dotted key at fault, like "proxy.routes[1].prefix" (array
	// indexes count from 0), "" for problems of the whole file.
	Key string
	// Msg is the whole message: it names Key and says what to do.
	Msg string
}

// Error formats e as "file:line: message", leaving out what is unknown.
func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(e.Line))
		}
		b.WriteString(": ")
	} else if e.Line > 0 {
		b.WriteString("line ")
		b.WriteString(strconv.Itoa(e.Line))
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// maxErrors is how many problems are reported at once; a file with more is
// most likely not a settings file at all.
const maxErrors = 30

// joinErrors sorts errs by position and joins them, or returns nil if there are none.
func joinErrors(errs []*Error) error {
	if len(errs) == 0 {
		return nil
	}
	slices.SortStableFunc(errs, func(a, b *Error) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
	n := min(len(errs), maxErrors)
	out := make([]error, 0, n+1)
	for _, e := range errs[:n] {
		out = append(out, e)
	}
	if more := len(errs) - n; more > 0 {
		out = append(out, &Error{File: errs[0].File, Msg: fmt.Sprintf("and %d more problems: fix the ones above first", more)})
	}
	return errors.Join(out...)
}

// quote quotes user text for a message, shortened if long.
func quote(s string) string {
	const max = 60
	if len(s) <= max {
		return strconv.Quote(s)
	}
	cut := max
	for cut > 0 && !startsRune(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut] + "…")
}

// startsRune reports whether b can start a UTF-8 sequence.
func startsRune(b byte) bool { return b&0xC0 != 0x80 }
