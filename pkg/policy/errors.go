package policy

import (
	"errors"
	"fmt"
)

// Error is one problem found in a policy file, located by line and column
// (both 1-based). Parse and Load return every problem they find, joined with
// errors.Join; each joined error is an *Error, so callers can walk them with
//
//	var perr *policy.Error
//	if errors.As(err, &perr) { ... }            // the first problem
//	for _, e := range policy.Problems(err) { ... } // all of them
//
// The message has the usual compiler form "<source>:<line>:<col>: <problem>",
// which editors and CI annotate. Problems only ever quote the policy file
// itself (keys, ids, topics, patterns), never event data. For YAML syntax
// errors the parser reports only the line, so the column is 1 there.
type Error struct {
	// Source names the file (the path given to Load, or the source given to Parse).
	Source string
	// Line and Column locate the problem, both 1-based.
	Line, Column int
	// Problem says what is wrong and, where it helps, what is allowed.
	Problem string
}

// Error implements error as "<source>:<line>:<col>: <problem>".
func (e *Error) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s", e.Source, e.Line, e.Column, e.Problem)
}

// Problems returns every *Error inside err (as returned by Parse or Load), in
// file order as they were found. It returns nil when err holds none, for
// example when Load could not read the file at all.
func Problems(err error) []*Error {
	var out []*Error
	var walk func(error)
	walk = func(err error) {
		if err == nil {
			return
		}
		var pe *Error
		if e, ok := err.(*Error); ok {
			out = append(out, e)
			return
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		if errors.As(err, &pe) {
			out = append(out, pe)
		}
	}
	walk(err)
	return out
}
