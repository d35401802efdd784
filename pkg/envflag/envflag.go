// Package envflag fills a service's configuration from environment variables
// and command-line flags, in that order (a flag wins over its variable), and
// prints every setting with its variable and default for --help.
//
// Each setting is declared once, next to the config field it fills:
//
//	s := envflag.New("enforcer", "Enforces consent on customer events.")
//	s.String(&cfg.Kafka.Brokers, "kafka-brokers", "KAFKA_BROKERS", "comma-separated broker addresses")
//	if err := s.Parse(os.Args[1:], os.Getenv); err != nil { ... }
//
// Bad values are collected, not returned one at a time: Parse reports every
// variable or flag that could not be read, each with what to set.
package envflag

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Set is a group of settings for one command.
type Set struct {
	name, about string
	fs          *flag.FlagSet
	entries     []*entry
}

type entry struct {
	flag, env, usage string
	def              string
	secret           bool
	set              func(string) error
	// flagErr is the error of a flag whose value must not be quoted: Set
	// keeps it here, for Parse, instead of giving it to package flag,
	// which would quote the value.
	flagErr error
}

// New returns an empty set for the command name; about is printed first by
// --help.
func New(name, about string) *Set {
	s := &Set{name: name, about: about, fs: flag.NewFlagSet(name, flag.ContinueOnError)}
	s.fs.Usage = func() { s.PrintUsage(s.fs.Output()) }
	return s
}

type funcValue struct {
	set func(string) error
	get func() string
}

func (f funcValue) Set(v string) error { return f.set(v) }
func (f funcValue) String() string {
	if f.get == nil {
		return ""
	}
	return f.get()
}

type boolValue struct{ funcValue }

func (boolValue) IsBoolFlag() bool { return true }

func (s *Set) add(flagName, env, usage string, secret bool, get func() string, set func(string) error) {
	e := &entry{flag: flagName, env: env, usage: usage, def: get(), secret: secret, set: set}
	s.entries = append(s.entries, e)
	s.fs.Var(funcValue{set: set, get: get}, flagName, usage)
}

// String declares a string setting.
func (s *Set) String(p *string, flagName, env, usage string) {
	s.add(flagName, env, usage, false, func() string { return *p }, func(v string) error { *p = v; return nil })
}

// Secret declares a string setting whose value is never printed.
func (s *Set) Secret(p *string, flagName, env, usage string) {
	s.add(flagName, env, usage, true, func() string { return *p }, func(v string) error { *p = v; return nil })
}

// List declares a comma-separated list setting; empty elements are dropped.
func (s *Set) List(p *[]string, flagName, env, usage string) {
	s.add(flagName, env, usage, false, func() string { return strings.Join(*p, ",") }, func(v string) error {
		*p = SplitList(v)
		return nil
	})
}

// Int declares an integer setting.
func (s *Set) Int(p *int, flagName, env, usage string) {
	s.add(flagName, env, usage, false, func() string { return strconv.Itoa(*p) }, func(v string) error {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return errors.New("not a whole number")
		}
		*p = n
		return nil
	})
}

// Bool declares a boolean setting.
func (s *Set) Bool(p *bool, flagName, env, usage string) {
	get := func() string { return strconv.FormatBool(*p) }
	set := func(v string) error {
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			return errors.New("not true or false")
		}
		*p = b
		return nil
	}
	s.entries = append(s.entries, &entry{flag: flagName, env: env, usage: usage, def: get(), set: set})
	s.fs.Var(boolValue{funcValue{set: set, get: get}}, flagName, usage)
}

// OptBool is a boolean setting that tells "not set" from false, declared
// with [Set.OptBool]. Its zero value is not set.
type OptBool struct{ val, set bool }

// Get returns the value and whether the variable or the flag set it.
func (b OptBool) Get() (val, set bool) { return b.val, b.set }

// OptBool declares a boolean setting that tells "not set" from false (for a
// setting whose explicit false means something). Like [Set.Bool], the flag
// given alone (--name) means true, and --name=false is false. A value that
// is not true or false is reported by Parse without quoting it (a value in
// the wrong setting may be a secret); an empty variable is not set.
func (s *Set) OptBool(p *OptBool, flagName, env, usage string) {
	get := func() string {
		if !p.set {
			return ""
		}
		return strconv.FormatBool(p.val)
	}
	set := func(v string) error {
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			return errors.New("not true or false (the value is not shown)")
		}
		*p = OptBool{val: b, set: true}
		return nil
	}
	e := &entry{flag: flagName, env: env, usage: usage, def: get(), set: set}
	s.entries = append(s.entries, e)
	s.fs.Var(boolValue{funcValue{get: get, set: func(v string) error {
		if err := set(v); err != nil {
			e.flagErr = err
		}
		return nil
	}}}, flagName, usage)
}

// Duration declares a duration setting such as "250ms" or "5s".
func (s *Set) Duration(p *time.Duration, flagName, env, usage string) {
	s.add(flagName, env, usage, false, func() string { return p.String() }, func(v string) error {
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil {
			return errors.New("not a duration such as 500ms or 5s")
		}
		*p = d
		return nil
	})
}

// Parse reads the environment (through getenv) and then args. It returns
// flag.ErrHelp after printing usage when asked for --help, and otherwise
// every problem found, joined.
func (s *Set) Parse(args []string, getenv func(string) string) error {
	var errs []error
	for _, e := range s.entries {
		e.flagErr = nil
		if e.env == "" {
			continue
		}
		v := getenv(e.env)
		if v == "" {
			continue
		}
		if err := e.set(v); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w; set it to a valid value or unset it (default %q)", e.env, err, e.def))
		}
	}
	s.fs.SetOutput(io.Discard)
	err := s.fs.Parse(args)
	for _, e := range s.entries {
		if e.flagErr != nil {
			errs = append(errs, fmt.Errorf("--%s: %w; set it to a valid value or leave it out", e.flag, e.flagErr))
		}
	}
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return flag.ErrHelp
		}
		errs = append(errs, fmt.Errorf("%w (see %s --help)", err, s.name))
	} else if s.fs.NArg() > 0 {
		// Not quoted: a stray argument is often the value of a secret
		// setting that lost its flag (--redis-url= redis://:pw@host).
		errs = append(errs, fmt.Errorf("%d unexpected argument(s), from position %d on (not shown: they may hold a secret): %s takes only flags, as --name=value (see --help)",
			s.fs.NArg(), len(args)-s.fs.NArg()+1, s.name))
	}
	return errors.Join(errs...)
}

// PrintUsage writes the help text: every flag, its variable and its default.
func (s *Set) PrintUsage(w io.Writer) {
	fmt.Fprintf(w, "%s: %s\n\nSettings (a flag wins over its environment variable):\n\n", s.name, s.about)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  FLAG\tENVIRONMENT\tDEFAULT\tMEANING")
	for _, e := range s.entries {
		def := e.def
		if e.secret && def != "" {
			def = "(set)"
		}
		if def == "" {
			def = `""`
		}
		env := e.env
		if env == "" {
			env = "-"
		}
		fmt.Fprintf(tw, "  --%s\t%s\t%s\t%s\n", e.flag, env, def, e.usage)
	}
	tw.Flush()
}

// SplitList splits a comma-separated list, trimming spaces and dropping
// empty elements.
func SplitList(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Float declares a floating-point setting.
func (s *Set) Float(p *float64, flagName, env, usage string) {
	s.add(flagName, env, usage, false, func() string { return strconv.FormatFloat(*p, 'g', -1, 64) }, func(v string) error {
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			return errors.New("not a number")
		}
		*p = f
		return nil
	})
}
