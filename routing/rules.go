package routing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"

	"github.com/relais-health/relais/coerce"
	"github.com/relais-health/relais/config"
	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/ingest"
	"github.com/relais-health/relais/routing/calendar"
	"github.com/relais-health/relais/storage"
)

// DefaultStrokePatterns is what stroke() looks for when no list is
// configured.
var DefaultStrokePatterns = []string{`(?i)(AVC|STROKE|THROMB|ALERTE THROMBOLYSE|UNV)`}

// Default stability delays.
const (
	DefaultStableAfter     = 60 * time.Second
	DefaultStableAfterStat = 10 * time.Second
)

// OnCall answers oncall("name") and oncall("name", "who") for one rota:
// whether a shift (matching who: summary, attendee or category) covers t.
// *calendar.Rota and *calendar.Source implement it.
type OnCall interface {
	OnCall(t time.Time, match string) bool
	At(t time.Time) []calendar.Shift
}

// loadCalendar loads a configured rota (file or URL) once; the engine
// refreshes URL sources (see Engine.Run).
func loadCalendar(name string, c config.Calendar, loc *time.Location) (OnCall, error) {
	src := calendar.NewSource(c.ICS, loc, nil)
	ctx, cancel := context.WithTimeout(context.Background(), calendar.DefaultLoadTimeout)
	defer cancel()
	if _, err := src.Reload(ctx); err != nil {
		return nil, err
	}
	return src, nil
}

// Options tune the compilation of rules beyond the configuration.
type Options struct {
	// StrokePatterns are the regular expressions stroke() matches against
	// StudyDescription, ProtocolName, RequestedProcedureDescription and the
	// Procedure Code Sequence's code meanings. Empty: DefaultStrokePatterns.
	StrokePatterns []string
	// Calendars resolves a configured calendar into its rota. Nil: the
	// calendar package's loader (see loadCalendar).
	Calendars func(name string, c config.Calendar, loc *time.Location) (OnCall, error)
}

// Rule is one compiled route.
type Rule struct {
	Name        string
	Index       int
	When        string
	Priority    string
	Mode        string
	StableAfter time.Duration
	Late        string
	Forward     []string
	Failover    []string
	Continue    bool
	Route       config.Route

	prog   *vm.Program
	idents []string        // the names the expression reads, for "why"
	coerce json.RawMessage // the coerce.Spec handed to tasks (nil: none)
}

// Rules is a compiled, immutable rule set.
type Rules struct {
	Rules    []*Rule
	Warnings []string

	loc      *time.Location
	holidays *calendar.Holidays
	noFrench bool
	extra    map[string]bool
	rotas    map[string]OnCall
	stroke   []*regexp.Regexp
	keywords map[string]keyword // every attribute name any rule reads
	windows  sync.Map           // string -> calendar.Window
}

type keyword struct {
	hex string
	seq bool
}

// contextNames are the names every expression may read besides attributes.
var contextNames = map[string]any{
	"CallingAE": "", "CalledAE": "", "SourceAddr": "", "Channel": "", "User": "",
	"Now":     time.Time{},
	"weekday": func() string { return "" },
	"hour":    func() int { return 0 },
	"weekend": func() bool { return false },
	"holiday": func() bool { return false },
	"night":   func(from, to string) bool { return false },
	"within":  func(window string) bool { return false },
	"oncall":  func(calendar string, who ...string) bool { return false },
	"stroke":  func(patterns ...string) bool { return false },
}

// RuleError is a route refused at compilation; it names the route.
type RuleError struct {
	Route string
	Key   string // "when", "forward", "coerce", "calendar"...
	Err   error
}

func (e *RuleError) Error() string {
	return fmt.Sprintf("route %q: %s: %v", e.Route, e.Key, e.Err)
}

func (e *RuleError) Unwrap() error { return e.Err }

// Compile compiles the routes of cfg. Every error names its route.
func Compile(cfg *config.Config, opt Options) (*Rules, error) {
	loc := calendar.Paris()
	if cfg.Holidays.Timezone != "" {
		l, err := time.LoadLocation(cfg.Holidays.Timezone)
		if err != nil {
			return nil, fmt.Errorf("holidays.timezone: %w", err)
		}
		loc = l
	}
	rs := &Rules{loc: loc, rotas: map[string]OnCall{}, keywords: map[string]keyword{}, extra: map[string]bool{}}
	fo := calendar.FrenchOptions{Location: loc, AlsaceMoselle: cfg.Holidays.AlsaceMoselle}
	for _, d := range cfg.Holidays.Extra {
		t, err := time.Parse("2006-01-02", d)
		if err != nil {
			return nil, fmt.Errorf("holidays.extra: %q is not YYYY-MM-DD", d)
		}
		fo.Extra = append(fo.Extra, calendar.ExtraHoliday{Day: calendar.Day{Year: t.Year(), Month: t.Month(), Day: t.Day()}, Name: "extra"})
		rs.extra[d] = true
	}
	for _, d := range cfg.Holidays.Except {
		t, err := time.Parse("2006-01-02", d)
		if err != nil {
			return nil, fmt.Errorf("holidays.except: %q is not YYYY-MM-DD", d)
		}
		fo.Removed = append(fo.Removed, calendar.Day{Year: t.Year(), Month: t.Month(), Day: t.Day()})
	}
	rs.holidays = calendar.French(fo)
	rs.noFrench = cfg.Holidays.Country == "none"
	pats := opt.StrokePatterns
	if len(pats) == 0 {
		pats = cfg.Routing.StrokePatterns
	}
	if len(pats) == 0 {
		pats = DefaultStrokePatterns
	}
	for _, p := range pats {
		re, err := regexp.Compile(p)
		if err != nil {
			return nil, fmt.Errorf("stroke pattern %q: %w", p, err)
		}
		rs.stroke = append(rs.stroke, re)
	}
	load := opt.Calendars
	if load == nil {
		load = loadCalendar
	}
	calErr := map[string]error{}
	for _, name := range sortedKeys(cfg.Calendars) {
		r, err := load(name, cfg.Calendars[name], loc)
		if err != nil {
			calErr[name] = err
			continue
		}
		rs.rotas[name] = r
	}
	usedCal := map[string]bool{}
	names := map[string]bool{}
	for i, r := range cfg.Routes {
		rule, err := rs.compileRule(cfg, i, r, calErr, usedCal)
		if err != nil {
			return nil, err
		}
		if names[rule.Name] {
			return nil, &RuleError{Route: rule.Name, Key: "name", Err: errors.New("defined twice")}
		}
		names[rule.Name] = true
		rs.Rules = append(rs.Rules, rule)
	}
	for _, name := range sortedKeys(calErr) {
		if !usedCal[name] {
			return nil, fmt.Errorf("calendars.%s: %v", name, calErr[name])
		}
	}
	return rs, nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (rs *Rules) compileRule(cfg *config.Config, i int, r config.Route, calErr map[string]error, usedCal map[string]bool) (*Rule, error) {
	name := r.Name
	if name == "" {
		name = fmt.Sprintf("#%d", i+1)
	}
	bad := func(key string, format string, a ...any) error {
		return &RuleError{Route: name, Key: key, Err: fmt.Errorf(format, a...)}
	}
	rule := &Rule{Name: name, Index: i, When: strings.TrimSpace(r.When), Priority: r.Priority, Mode: r.Mode,
		StableAfter: time.Duration(r.StableAfter), Late: r.Late, Forward: r.Forward, Failover: r.Failover, Continue: r.Continue, Route: r}
	switch rule.Priority {
	case "":
		rule.Priority = config.PriorityRoutine
	case config.PriorityStat, config.PriorityUrgent, config.PriorityRoutine:
	default:
		return nil, bad("priority", "%q is not STAT, URGENT or ROUTINE", r.Priority)
	}
	switch rule.Mode {
	case "":
		rule.Mode = config.ModeStable
	case config.ModeStable, config.ModeImmediate:
	default:
		return nil, bad("mode", "%q is not immediate or stable", r.Mode)
	}
	if rule.Late == "" {
		rule.Late = config.LateSend
	}
	if rule.Late != config.LateSend && rule.Late != config.LateResend {
		return nil, bad("late", "%q is not send or resend", r.Late)
	}
	if rule.StableAfter <= 0 {
		rule.StableAfter = DefaultStableAfter
		if rule.Priority == config.PriorityStat {
			rule.StableAfter = DefaultStableAfterStat
		}
	}
	for _, d := range append(append([]string{}, r.Forward...), r.Failover...) {
		if _, ok := cfg.Destinations[d]; !ok {
			return nil, bad("forward", "unknown destination %q", d)
		}
	}
	if r.Priors != nil {
		found := false
		for _, ra := range cfg.RemoteAEs {
			found = found || ra.Name == r.Priors.From
		}
		if !found {
			return nil, bad("priors.from", "unknown remote AE %q", r.Priors.From)
		}
	}
	if r.Coerce != nil {
		raw, err := compileCoerce(r.Coerce)
		if err != nil {
			return nil, bad("coerce", "%v", err)
		}
		rule.coerce = raw
	}
	if rule.When == "" {
		return rule, nil
	}
	tree, err := parser.Parse(rule.When)
	if err != nil {
		return nil, bad("when", "%s", oneLine(err))
	}
	env := make(map[string]any, len(contextNames)+8)
	for k, v := range contextNames {
		env[k] = v
	}
	seen := map[string]bool{}
	var walkErr error
	visit := visitor(func(n *ast.Node) {
		switch x := (*n).(type) {
		case *ast.IdentifierNode:
			if seen[x.Value] {
				return
			}
			seen[x.Value] = true
			if v, ok := contextNames[x.Value]; ok {
				switch v.(type) {
				case string, time.Time:
					rule.idents = append(rule.idents, x.Value)
				}
				return
			}
			t, ok := dicom.TagByKeyword(x.Value)
			if !ok {
				return // a let variable, or an unknown name the checker refuses
			}
			h := fmt.Sprintf("%08X", uint32(t))
			_, kept := storage.SequenceItemTags[h]
			if dicom.LookupVR(t) == dicom.VRSQ {
				if !kept {
					if walkErr == nil {
						walkErr = bad("when", "%s is a sequence the index does not keep (kept: %s)", x.Value, keptSequences())
					}
					return
				}
				env[x.Value] = []any{}
			} else {
				env[x.Value] = ""
				if !indexed(h) {
					rs.Warnings = append(rs.Warnings, fmt.Sprintf("route %q: %s is not an indexed attribute: it is always empty", name, x.Value))
				}
			}
			rs.keywords[x.Value] = keyword{hex: h, seq: kept}
			rule.idents = append(rule.idents, x.Value)
		case *ast.CallNode:
			id, ok := x.Callee.(*ast.IdentifierNode)
			if !ok {
				return
			}
			var args []string
			for _, a := range x.Arguments {
				if s, ok := a.(*ast.StringNode); ok {
					args = append(args, s.Value)
				} else {
					args = append(args, "\x00")
				}
			}
			if err := rs.checkCall(id.Value, args, calErr, usedCal); err != nil && walkErr == nil {
				walkErr = bad("when", "%v", err)
			}
		}
	})
	ast.Walk(&tree.Node, visit)
	if walkErr != nil {
		return nil, walkErr
	}
	prog, err := expr.Compile(rule.When, expr.Env(env), expr.AsBool(), expr.DisableBuiltin("now"), expr.Timezone(rs.loc.String()))
	if err != nil {
		return nil, bad("when", "%s", oneLine(err))
	}
	rule.prog = prog
	sort.Strings(rule.idents)
	return rule, nil
}

type visitor func(*ast.Node)

func (v visitor) Visit(n *ast.Node) { v(n) }

func oneLine(err error) string {
	s := err.Error()
	// expr errors draw a caret under the source on the following lines:
	// the first line has the message and the position.
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

var indexedSet = func() map[string]bool {
	m := map[string]bool{}
	for _, t := range ingest.IndexedTags {
		m[fmt.Sprintf("%08X", uint32(t))] = true
	}
	return m
}()

// indexed reports whether ingest keeps attribute h in Instance.Attrs.
func indexed(h string) bool { return indexedSet[h] }

func keptSequences() string {
	var out []string
	for h := range storage.SequenceItemTags {
		v, _ := strconv.ParseUint(h, 16, 32)
		out = append(out, dicom.Keyword(dicom.Tag(v)))
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// checkCall validates the constant arguments of our functions at compile
// time ("\x00" stands for a non-constant argument).
func (rs *Rules) checkCall(fn string, args []string, calErr map[string]error, usedCal map[string]bool) error {
	switch fn {
	case "within":
		if len(args) == 1 && args[0] != "\x00" {
			if _, err := rs.window(args[0]); err != nil {
				return fmt.Errorf("within(%q): %v", args[0], err)
			}
		}
	case "night":
		for _, a := range args {
			if a == "\x00" {
				continue
			}
			if _, err := calendar.ParseTimeOfDay(a); err != nil {
				return fmt.Errorf("night(%q): %v", a, err)
			}
		}
	case "oncall":
		if len(args) >= 1 && args[0] != "\x00" {
			usedCal[args[0]] = true
			if err, ok := calErr[args[0]]; ok {
				return fmt.Errorf("oncall(%q): calendar unreadable: %v", args[0], err)
			}
			if _, ok := rs.rotas[args[0]]; !ok {
				return fmt.Errorf("oncall(%q): unknown calendar (see calendars:)", args[0])
			}
		}
	case "stroke":
		for _, a := range args {
			if a == "\x00" {
				continue
			}
			if _, err := regexp.Compile(a); err != nil {
				return fmt.Errorf("stroke(%q): %v", a, err)
			}
		}
	}
	return nil
}

func (rs *Rules) window(s string) (calendar.Window, error) {
	if w, ok := rs.windows.Load(s); ok {
		return w.(calendar.Window), nil
	}
	w, err := calendar.ParseWindowIn(s, rs.loc)
	if err != nil {
		return calendar.Window{}, err
	}
	rs.windows.Store(s, w)
	return w, nil
}

// Location is the time zone time functions answer in.
func (rs *Rules) Location() *time.Location { return rs.loc }

// Decision is the outcome of one route for one instance.
type Decision struct {
	Route string `json:"route"`
	// Matched: the route's condition holds. Applies: it matched and no
	// earlier route decided (first match wins unless continue).
	Matched bool `json:"matched"`
	Applies bool `json:"applies"`
	// Why lists the values the condition read and the results of the
	// functions it called.
	Why          string        `json:"why"`
	Err          string        `json:"error,omitempty"`
	Mode         string        `json:"mode"`
	Priority     string        `json:"priority"`
	StableAfter  time.Duration `json:"stable_after,omitempty"`
	Destinations []string      `json:"destinations,omitempty"`
	Failover     []string      `json:"failover,omitempty"`
	Continue     bool          `json:"continue,omitempty"`

	rule *Rule
}

// Rule returns the compiled route of d.
func (d Decision) Rule() *Rule { return d.rule }

// evalCtx is one instance's evaluation.
type evalCtx struct {
	rs    *Rules
	inst  *storage.Instance
	now   time.Time
	trace []string
}

func (ec *evalCtx) note(format string, a ...any) {
	ec.trace = append(ec.trace, fmt.Sprintf(format, a...))
}

func (rs *Rules) env(ec *evalCtx) map[string]any {
	inst := ec.inst
	env := make(map[string]any, len(contextNames)+len(rs.keywords))
	for kw, k := range rs.keywords {
		v := inst.Attrs[k.hex]
		if k.seq {
			env[kw] = decodeSeq(v)
		} else {
			env[kw] = v
		}
	}
	env["CallingAE"] = inst.Source.CallingAE
	env["CalledAE"] = inst.Source.CalledAE
	env["SourceAddr"] = inst.Source.RemoteAddr
	env["Channel"] = inst.Source.Channel
	env["User"] = inst.Source.User
	env["Now"] = ec.now.In(rs.loc) // Now.Hour() is local time, like hour()
	lt := ec.now.In(rs.loc)
	env["weekday"] = func() string {
		d := lt.Weekday().String()[:3]
		ec.note("weekday()=%s", d)
		return d
	}
	env["hour"] = func() int { ec.note("hour()=%d", lt.Hour()); return lt.Hour() }
	env["weekend"] = func() bool {
		b := calendar.Weekend(ec.now, rs.loc)
		ec.note("weekend()=%v (%s)", b, lt.Weekday())
		return b
	}
	env["holiday"] = func() bool {
		name, ok := rs.holiday(ec.now)
		if ok {
			ec.note("holiday()=true (%s %s)", lt.Format("2006-01-02"), name)
		} else {
			ec.note("holiday()=false (%s)", lt.Format("2006-01-02"))
		}
		return ok
	}
	env["night"] = func(from, to string) bool {
		f, err1 := calendar.ParseTimeOfDay(from)
		t, err2 := calendar.ParseTimeOfDay(to)
		if err1 != nil || err2 != nil {
			ec.note("night(%q,%q): bad time", from, to)
			return false
		}
		b := calendar.Night(ec.now, f, t, rs.loc)
		ec.note("night(%s,%s)=%v (%s)", from, to, b, lt.Format("15:04"))
		return b
	}
	env["within"] = func(window string) bool {
		w, err := rs.window(window)
		if err != nil {
			ec.note("within(%q): %v", window, err)
			return false
		}
		b := w.Contains(ec.now)
		ec.note("within(%q)=%v (%s)", window, b, lt.Format("Mon 15:04"))
		return b
	}
	env["oncall"] = func(cal string, who ...string) bool {
		r, ok := rs.rotas[cal]
		w := strings.Join(who, " ")
		if !ok {
			ec.note("oncall(%q): unknown calendar", cal)
			return false
		}
		b := r.OnCall(ec.now, w)
		var on []string
		for _, s := range r.At(ec.now) {
			on = append(on, s.Summary)
		}
		who2 := "nobody on call"
		if len(on) > 0 {
			who2 = "on call: " + strings.Join(on, ", ")
		}
		if w != "" {
			ec.note("oncall(%q,%q)=%v (%s; %s)", cal, w, b, lt.Format("Mon 2006-01-02 15:04"), who2)
		} else {
			ec.note("oncall(%q)=%v (%s; %s)", cal, b, lt.Format("Mon 2006-01-02 15:04"), who2)
		}
		return b
	}
	env["stroke"] = func(patterns ...string) bool {
		res := rs.stroke
		if len(patterns) > 0 {
			res = nil
			for _, p := range patterns {
				if re, err := regexp.Compile(p); err == nil {
					res = append(res, re)
				}
			}
		}
		field, val, ok := strokeMatch(inst, res)
		if ok {
			ec.note("stroke()=true (%s %q)", field, val)
		} else {
			ec.note("stroke()=false")
		}
		return ok
	}
	return env
}

func (rs *Rules) holiday(t time.Time) (string, bool) {
	if rs.noFrench {
		d := t.In(rs.loc).Format("2006-01-02")
		if rs.extra[d] {
			return "extra", true
		}
		return "", false
	}
	return rs.holidays.Holiday(t)
}

// strokeMatch looks for a stroke pattern in the fields stroke() reads.
func strokeMatch(inst *storage.Instance, res []*regexp.Regexp) (string, string, bool) {
	fields := []struct{ name, hex string }{
		{"StudyDescription", "00081030"}, {"ProtocolName", "00181030"}, {"RequestedProcedureDescription", "00321060"},
		{"SeriesDescription", "0008103E"},
	}
	check := func(v string) bool {
		for _, re := range res {
			if v != "" && re.MatchString(v) {
				return true
			}
		}
		return false
	}
	for _, f := range fields {
		if v := inst.Attrs[f.hex]; check(v) {
			return f.name, v, true
		}
	}
	items, _ := storage.DecodeItems(inst.Attrs["00081032"])
	for _, it := range items {
		if v := it["00080104"]; check(v) {
			return "ProcedureCodeSequence.CodeMeaning", v, true
		}
	}
	items, _ = storage.DecodeItems(inst.Attrs["00400275"])
	for _, it := range items {
		if v := it["00321060"]; check(v) {
			return "RequestAttributesSequence.RequestedProcedureDescription", v, true
		}
	}
	return "", "", false
}

// decodeSeq turns a kept sequence's Attrs value into a list of maps by
// keyword (nested kept sequences decoded too).
func decodeSeq(v string) []any {
	items, err := storage.DecodeItems(v)
	if err != nil || len(items) == 0 {
		return []any{}
	}
	out := make([]any, 0, len(items))
	for _, it := range items {
		m := make(map[string]any, len(it))
		for h, val := range it {
			t, err := strconv.ParseUint(h, 16, 32)
			if err != nil {
				continue
			}
			kw := dicom.Keyword(dicom.Tag(t))
			if kw == "" {
				kw = h
			}
			if _, nested := storage.SequenceItemTags[h]; nested {
				m[kw] = decodeSeq(val)
			} else {
				m[kw] = val
			}
		}
		out = append(out, m)
	}
	return out
}

// Evaluate returns the routes that apply to inst, in order (first match
// decides unless it says continue), at time now (the instance's arrival).
func (rs *Rules) Evaluate(inst *storage.Instance, now time.Time) []Decision {
	var out []Decision
	for _, d := range rs.evaluate(inst, now, false) {
		if d.Applies {
			out = append(out, d)
		}
	}
	return out
}

// Test evaluates every route (a dry run): matched or not, applying or
// shadowed by an earlier decisive match, with why.
func (rs *Rules) Test(inst *storage.Instance, now time.Time) []Decision {
	return rs.evaluate(inst, now, true)
}

func (rs *Rules) evaluate(inst *storage.Instance, now time.Time, all bool) []Decision {
	if now.IsZero() {
		now = inst.ReceivedAt
	}
	ec := &evalCtx{rs: rs, inst: inst, now: now}
	var env map[string]any
	decided := false
	var out []Decision
	for _, r := range rs.Rules {
		if decided && !all {
			break
		}
		d := Decision{Route: r.Name, Mode: r.Mode, Priority: r.Priority, Destinations: r.Forward, Failover: r.Failover,
			Continue: r.Continue, rule: r}
		if r.Mode == config.ModeStable {
			d.StableAfter = r.StableAfter
		}
		if r.prog == nil {
			d.Matched, d.Why = true, "no condition: matches every instance"
		} else {
			if env == nil {
				env = rs.env(ec)
			}
			ec.trace = ec.trace[:0]
			res, err := expr.Run(r.prog, env)
			if err != nil {
				d.Err = oneLine(err)
			} else {
				d.Matched, _ = res.(bool)
			}
			d.Why = rs.why(r, env, ec.trace)
		}
		if d.Matched && !decided {
			d.Applies = true
			if !r.Continue {
				decided = true
			}
		}
		out = append(out, d)
	}
	return out
}

func (rs *Rules) why(r *Rule, env map[string]any, trace []string) string {
	var parts []string
	for _, id := range r.idents {
		v := env[id]
		switch x := v.(type) {
		case string:
			parts = append(parts, fmt.Sprintf("%s=%q", id, x))
		case time.Time:
			parts = append(parts, fmt.Sprintf("%s=%s", id, x.In(rs.loc).Format("Mon 2006-01-02 15:04:05 MST")))
		case []any:
			parts = append(parts, fmt.Sprintf("%s=%d item(s) %v", id, len(x), x))
		}
	}
	parts = append(parts, trace...)
	if len(parts) == 0 {
		return "constant condition"
	}
	return strings.Join(parts, "; ")
}

// compileCoerce checks a route's coerce block and returns it as JSON for
// Task.Coerce (nil when it changes nothing).
func compileCoerce(spec *coerce.Spec) (json.RawMessage, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if spec.Empty() {
		return nil, nil
	}
	return json.Marshal(spec)
}
