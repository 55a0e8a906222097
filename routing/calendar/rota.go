package calendar

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/emersion/go-ical"
	"github.com/teambition/rrule-go"
)

// Limits applied when reading and expanding a rota.
const (
	// MaxRotaSize is the largest .ics accepted, from a file, a URL or a reader.
	MaxRotaSize = 10 << 20
	// MaxShiftDuration bounds one occurrence's length; it is also how far
	// back At looks for an occurrence still covering the instant.
	MaxShiftDuration = 366 * 24 * time.Hour
	// maxCount bounds COUNT (such rules are expanded once, at parse time).
	maxCount = 10000
	// maxInterval bounds INTERVAL.
	maxInterval = 1000
	// maxOccurrencesPerAt bounds the occurrences one event may generate for
	// one At call.
	maxOccurrencesPerAt = 2000
	// maxNesting bounds component nesting (VCALENDAR > VEVENT > VALARM is 3).
	maxNesting = 8
	// Supported DTSTART years.
	minYear, maxYear = 1900, 2200
	// maxParamValue bounds one parameter value, maxParamCost the sum of
	// their squared lengths (go-ical decodes them in quadratic time).
	maxParamValue, maxParamCost = 1024, 1 << 28
	// maxTimesPerDay bounds BYHOUR × BYMINUTE × BYSECOND.
	maxTimesPerDay = 1440
	// lookbackSlack covers the difference between a nominal (wall-clock)
	// and an exact duration across DST changes.
	lookbackSlack = 2 * time.Hour
)

// Shift is one occurrence of a rota event.
type Shift struct {
	Summary     string
	Description string
	Location    string
	// Attendees as "CN <address>" (mailto: stripped), or just the address
	// or CN when only one is given.
	Attendees  []string
	Categories []string
	// Start and End (exclusive) of this occurrence, in the rota location.
	Start, End time.Time
	UID        string
}

// Matches reports whether match is a case-insensitive substring of the
// summary, an attendee or a category; "" matches any shift.
func (s Shift) Matches(match string) bool {
	if match == "" {
		return true
	}
	m := strings.ToLower(match)
	if strings.Contains(strings.ToLower(s.Summary), m) {
		return true
	}
	for _, a := range s.Attendees {
		if strings.Contains(strings.ToLower(a), m) {
			return true
		}
	}
	for _, c := range s.Categories {
		if strings.Contains(strings.ToLower(c), m) {
			return true
		}
	}
	return false
}

// Rota is a parsed on-call calendar. It is immutable and safe for
// concurrent use; reloading builds a new Rota (see Source).
type Rota struct {
	loc    *time.Location
	events []*event
}

// ParseError locates a problem in an .ics file.
type ParseError struct {
	Line int    // 1-based physical line, 0 if unknown
	Prop string // property name, e.g. "DTSTART", if known
	UID  string // event UID, if known
	Err  error
}

func (e *ParseError) Error() string {
	var b strings.Builder
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.UID != "" {
		fmt.Fprintf(&b, "event %q: ", e.UID)
	}
	if e.Prop != "" {
		fmt.Fprintf(&b, "%s: ", e.Prop)
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *ParseError) Unwrap() error { return e.Err }

// endKind says how an occurrence's end is derived from its start.
type endKind int

const (
	endExact    endKind = iota // start + dur
	endWall                    // start's date + days, at wall clock endSec
	endWallSame                // start's date + days, at start's wall clock
)

type event struct {
	tmpl    Shift // without Start/End
	line    int
	start   time.Time // DTSTART, in its own location
	allDay  bool
	end     endKind
	dur     time.Duration // endExact
	days    int           // endWall, endWallSame
	endSec  int           // endWall
	lookbak time.Duration // longest occurrence + slack

	rules []rrule.ROption // open-ended rules, defaults pinned
	fixed []time.Time     // sorted: RDATEs and expanded COUNT rules

	exdates    map[int64]bool
	exdays     map[civilDay]bool
	overridden map[int64]bool
	overDays   map[civilDay]bool
}

type civilDay struct {
	y int
	m time.Month
	d int
}

func dayOf(t time.Time) civilDay {
	y, m, d := t.Date()
	return civilDay{y, m, d}
}

// occurrenceEnd returns the end of the occurrence starting at s.
func (e *event) occurrenceEnd(s time.Time) time.Time {
	switch e.end {
	case endWall, endWallSame:
		ls := s.In(e.start.Location())
		y, m, d := ls.Date()
		sec := e.endSec
		if e.end == endWallSame {
			sec = ls.Hour()*3600 + ls.Minute()*60 + ls.Second()
		}
		return time.Date(y, m, d+e.days, 0, 0, sec, 0, e.start.Location())
	default:
		return s.Add(e.dur)
	}
}

func (e *event) excluded(s time.Time) bool {
	u := s.Unix()
	if e.exdates[u] || e.overridden[u] {
		return true
	}
	if len(e.exdays) > 0 || len(e.overDays) > 0 {
		cd := dayOf(s.In(e.start.Location()))
		return e.exdays[cd] || e.overDays[cd]
	}
	return false
}

// ParseRota reads an iCalendar stream (at most MaxRotaSize bytes). Floating
// times and all-day events are taken in loc (nil: Europe/Paris).
func ParseRota(r io.Reader, loc *time.Location) (*Rota, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxRotaSize+1))
	if err != nil {
		return nil, fmt.Errorf("calendar: reading rota: %w", err)
	}
	if len(data) > MaxRotaSize {
		return nil, fmt.Errorf("calendar: rota larger than the %d MiB limit", MaxRotaSize>>20)
	}
	rota, err := parseRota(data, orDefault(loc))
	if err != nil {
		return nil, fmt.Errorf("calendar: parsing rota: %w", err)
	}
	return rota, nil
}

// MustParseRota parses an in-memory rota and panics on error, for tests.
func MustParseRota(ics string, loc *time.Location) *Rota {
	r, err := ParseRota(strings.NewReader(ics), loc)
	if err != nil {
		panic(err)
	}
	return r
}

// Location returns the rota's location.
func (r *Rota) Location() *time.Location { return r.loc }

// Events returns the number of (non-cancelled) events, overrides included.
func (r *Rota) Events() int {
	if r == nil {
		return 0
	}
	return len(r.events)
}

// At returns the shifts covering t (Start <= t < End), ordered by start,
// then UID. Only occurrences that may cover t are expanded.
func (r *Rota) At(t time.Time) []Shift {
	if r == nil {
		return nil
	}
	var out []Shift
	for _, e := range r.events {
		out = e.appendAt(out, t, r.loc)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].Start.Equal(out[j].Start) {
			return out[i].Start.Before(out[j].Start)
		}
		return out[i].UID < out[j].UID
	})
	return out
}

// OnCall reports whether some shift at t matches match (see Shift.Matches;
// "" means any shift).
func (r *Rota) OnCall(t time.Time, match string) bool {
	for _, s := range r.At(t) {
		if s.Matches(match) {
			return true
		}
	}
	return false
}

func (e *event) appendAt(out []Shift, t time.Time, loc *time.Location) []Shift {
	lo := t.Add(-e.lookbak)
	var seen map[int64]bool
	emit := func(s time.Time) {
		if s.After(t) || s.Before(lo) || e.excluded(s) {
			return
		}
		end := e.occurrenceEnd(s)
		if !t.Before(end) {
			return
		}
		if seen == nil {
			seen = map[int64]bool{}
		}
		if seen[s.Unix()] {
			return
		}
		seen[s.Unix()] = true
		sh := e.tmpl
		// Copies: callers may modify what they get without touching the rota.
		sh.Attendees = append([]string(nil), e.tmpl.Attendees...)
		sh.Categories = append([]string(nil), e.tmpl.Categories...)
		sh.Start, sh.End = s.In(loc), end.In(loc)
		out = append(out, sh)
	}
	emit(e.start)
	if len(e.fixed) > 0 {
		i := sort.Search(len(e.fixed), func(i int) bool { return !e.fixed[i].Before(lo) })
		for ; i < len(e.fixed) && !e.fixed[i].After(t); i++ {
			emit(e.fixed[i])
		}
	}
	if e.start.After(t) {
		return out
	}
	for _, o := range e.rules {
		if !o.Until.IsZero() && o.Until.Before(lo) {
			continue
		}
		o.Dtstart = alignedStart(o, lo)
		rr, err := rrule.NewRRule(o)
		if err != nil {
			continue // validated at parse time
		}
		next := rr.Iterator()
		for n := 0; n < maxOccurrencesPerAt; n++ {
			s, ok := next()
			if !ok || s.After(t) {
				break
			}
			emit(s)
		}
	}
	return out
}

// alignedStart returns a DTSTART for o, at most lo, that generates the same
// occurrences as o.Dtstart from lo on: a whole number of periods later, so
// that expanding near lo does not iterate from the original DTSTART. The
// BY* defaults derived from DTSTART must have been pinned (pinDefaults).
func alignedStart(o rrule.ROption, lo time.Time) time.Time {
	s := o.Dtstart
	loc := s.Location()
	l := lo.In(loc)
	if !l.After(s) {
		return s
	}
	n := o.Interval
	if n < 1 {
		n = 1
	}
	sy, sm, sd := s.Date()
	ly, lm, ld := l.Date()
	switch o.Freq {
	case rrule.DAILY, rrule.WEEKLY:
		period := n
		if o.Freq == rrule.WEEKLY {
			period = 7 * n
		}
		// Unix seconds, not Sub: a Duration saturates after 292 years.
		days := int((time.Date(ly, lm, ld, 0, 0, 0, 0, time.UTC).Unix() - time.Date(sy, sm, sd, 0, 0, 0, 0, time.UTC).Unix()) / 86400)
		k := days/period - 1
		if k <= 0 {
			return s
		}
		return time.Date(sy, sm, sd+k*period, 0, 0, 0, 0, loc)
	case rrule.MONTHLY:
		k := ((ly-sy)*12+int(lm-sm))/n - 1
		if k <= 0 {
			return s
		}
		return time.Date(sy, sm+time.Month(k*n), 1, 0, 0, 0, 0, loc)
	case rrule.YEARLY:
		k := (ly-sy)/n - 1
		if k <= 0 {
			return s
		}
		return time.Date(sy+k*n, time.January, 1, 0, 0, 0, 0, loc)
	}
	return s
}

var pyWeekday = [7]rrule.Weekday{rrule.SU, rrule.MO, rrule.TU, rrule.WE, rrule.TH, rrule.FR, rrule.SA}

// pinDefaults makes explicit the BY* parts rrule derives from DTSTART
// (same rules as rrule-go's buildRRule), so that DTSTART can be moved.
func pinDefaults(o *rrule.ROption) {
	s := o.Dtstart
	if len(o.Byweekno) == 0 && len(o.Byyearday) == 0 && len(o.Bymonthday) == 0 &&
		len(o.Byweekday) == 0 && len(o.Byeaster) == 0 {
		switch o.Freq {
		case rrule.YEARLY:
			if len(o.Bymonth) == 0 {
				o.Bymonth = []int{int(s.Month())}
			}
			o.Bymonthday = []int{s.Day()}
		case rrule.MONTHLY:
			o.Bymonthday = []int{s.Day()}
		case rrule.WEEKLY:
			o.Byweekday = []rrule.Weekday{pyWeekday[s.Weekday()]}
		}
	}
	if len(o.Byhour) == 0 {
		o.Byhour = []int{s.Hour()}
	}
	if len(o.Byminute) == 0 {
		o.Byminute = []int{s.Minute()}
	}
	if len(o.Bysecond) == 0 {
		o.Bysecond = []int{s.Second()}
	}
}

// ---- parsing ----

type parser struct {
	loc     *time.Location
	zones   map[string]*time.Location // TZID → location (nil: unknown)
	aliases map[string]string         // VTIMEZONE TZID → X-LIC-LOCATION
}

func parseRota(data []byte, loc *time.Location) (*Rota, error) {
	eventLines, err := prescan(data)
	if err != nil {
		return nil, err
	}
	cal, err := decodeSafe(data)
	if err != nil {
		if perr := locateSyntaxError(data); perr != nil {
			return nil, perr
		}
		return nil, err
	}
	p := &parser{loc: loc, zones: map[string]*time.Location{}, aliases: map[string]string{}}
	for _, c := range cal.Children {
		if c.Name == ical.CompTimezone {
			id := propText(c.Props.Get(ical.PropTimezoneID))
			if x := propText(c.Props.Get("X-LIC-LOCATION")); id != "" && x != "" {
				p.aliases[id] = x
			}
		}
	}

	type parsed struct {
		ev        *event
		recurID   *time.Time
		recurDate bool
		cancelled bool
	}
	var all []parsed
	k := 0
	for _, c := range cal.Children {
		if c.Name != ical.CompEvent {
			continue
		}
		line := 0
		if k < len(eventLines) {
			line = eventLines[k]
		}
		k++
		ev, rid, ridDate, cancelled, err := p.parseEvent(c, line)
		if err != nil {
			var pe *ParseError
			if errors.As(err, &pe) && pe.Prop != "" && pe.Line > 0 {
				pe.Line = propLine(data, pe.Line, pe.Prop)
			}
			return nil, err
		}
		all = append(all, parsed{ev, rid, ridDate, cancelled})
	}

	masters := map[string][]*event{}
	for _, x := range all {
		if x.recurID == nil && !x.cancelled {
			masters[x.ev.tmpl.UID] = append(masters[x.ev.tmpl.UID], x.ev)
		}
	}
	rota := &Rota{loc: loc}
	for _, x := range all {
		if x.recurID != nil {
			for _, m := range masters[x.ev.tmpl.UID] {
				if x.recurDate {
					if m.overDays == nil {
						m.overDays = map[civilDay]bool{}
					}
					m.overDays[dayOf(*x.recurID)] = true
				} else {
					if m.overridden == nil {
						m.overridden = map[int64]bool{}
					}
					m.overridden[x.recurID.Unix()] = true
				}
			}
			// A modified occurrence stands alone (RANGE=THISANDFUTURE is
			// not supported: only the named occurrence is replaced).
			x.ev.rules, x.ev.fixed = nil, nil
		}
		if !x.cancelled {
			rota.events = append(rota.events, x.ev)
		}
	}
	return rota, nil
}

// decodeSafe runs the go-ical decoder, turning its panics on malformed
// content lines into errors.
func decodeSafe(data []byte) (cal *ical.Calendar, err error) {
	defer func() {
		if r := recover(); r != nil {
			cal, err = nil, fmt.Errorf("malformed iCalendar: %v", r)
		}
	}()
	return ical.NewDecoder(bytes.NewReader(data)).Decode()
}

// logicalLines calls f for each unfolded content line with the number of
// its first physical line; f returns false to stop.
func logicalLines(data []byte, f func(line int, s string) bool) {
	var cur strings.Builder
	curLine, n := 0, 0
	flush := func() bool {
		if curLine == 0 {
			return true
		}
		ok := f(curLine, cur.String())
		cur.Reset()
		curLine = 0
		return ok
	}
	for len(data) > 0 {
		n++
		var l []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			l, data = data[:i], data[i+1:]
		} else {
			l, data = data, nil
		}
		l = bytes.TrimSuffix(l, []byte("\r"))
		if len(l) > 0 && (l[0] == ' ' || l[0] == '\t') && curLine != 0 {
			cur.Write(l[1:])
			continue
		}
		if !flush() {
			return
		}
		if len(l) == 0 {
			continue
		}
		curLine = n
		cur.Write(l)
	}
	flush()
}

// prescan checks every content line against the grammar go-ical's decoder
// accepts (so that it neither panics nor fails without a line number),
// bounds nesting and parameter lengths (the decoder's parameter parsing is
// quadratic in a value's length), and records the line of each VEVENT
// directly in the VCALENDAR, in document order (the decoder's order).
func prescan(data []byte) ([]int, error) {
	var lines []int
	depth := 0
	var perr error
	budget := maxParamCost
	logicalLines(data, func(n int, s string) bool {
		if err := checkContentLine(s, &budget); err != nil {
			perr = &ParseError{Line: n, Err: err}
			return false
		}
		name, val, _ := strings.Cut(s, ":")
		switch strings.ToUpper(name) {
		case "BEGIN":
			depth++
			if depth > maxNesting {
				perr = &ParseError{Line: n, Err: fmt.Errorf("components nested more than %d deep", maxNesting)}
				return false
			}
			if depth == 2 && strings.EqualFold(val, ical.CompEvent) {
				lines = append(lines, n)
			}
		case "END":
			depth--
			if depth <= 0 {
				return false // the decoder stops after the first VCALENDAR
			}
		}
		return true
	})
	return lines, perr
}

// propLine returns the line of the first prop property of the component
// starting at line from (or from itself if not found).
func propLine(data []byte, from int, prop string) int {
	found := from
	logicalLines(data, func(n int, s string) bool {
		if n <= from {
			return true
		}
		name := s
		if i := strings.IndexAny(s, ";:"); i >= 0 {
			name = s[:i]
		}
		if strings.EqualFold(name, "END") {
			return false
		}
		if strings.EqualFold(name, prop) {
			found = n
			return false
		}
		return true
	})
	return found
}

// locateSyntaxError finds the first line the decoder rejects, mirroring its
// content-line grammar and BEGIN/END matching.
func locateSyntaxError(data []byte) error {
	var perr error
	type open struct {
		name string
		line int
	}
	var stack []open
	first := true
	budget := maxParamCost
	logicalLines(data, func(n int, s string) bool {
		if err := checkContentLine(s, &budget); err != nil {
			perr = &ParseError{Line: n, Err: err}
			return false
		}
		name, val, _ := strings.Cut(s, ":")
		name = strings.ToUpper(name)
		if first {
			first = false
			if name != "BEGIN" || !strings.EqualFold(val, ical.CompCalendar) {
				perr = &ParseError{Line: n, Err: fmt.Errorf("expected BEGIN:VCALENDAR, got %q", truncate(s, 40))}
				return false
			}
		}
		switch name {
		case "BEGIN":
			stack = append(stack, open{strings.ToUpper(val), n})
		case "END":
			if len(stack) == 0 {
				perr = &ParseError{Line: n, Err: fmt.Errorf("END:%s without BEGIN", val)}
				return false
			}
			top := stack[len(stack)-1]
			if !strings.EqualFold(top.name, val) {
				perr = &ParseError{Line: n, Err: fmt.Errorf("END:%s does not close BEGIN:%s of line %d", val, top.name, top.line)}
				return false
			}
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				return false
			}
		}
		return true
	})
	if perr == nil && first {
		perr = &ParseError{Line: 1, Err: errors.New("empty file: expected BEGIN:VCALENDAR")}
	}
	if perr == nil && len(stack) > 0 {
		top := stack[len(stack)-1]
		perr = &ParseError{Line: top.line, Err: fmt.Errorf("BEGIN:%s is never closed", top.name)}
	}
	return perr
}

// checkContentLine applies go-ical's content line grammar:
// name *(";" param "=" value *("," value)) ":" value, and charges the
// squared length of each parameter value to *budget.
func checkContentLine(s string, budget *int) error {
	i := strings.IndexAny(s, ";:")
	if i < 0 {
		return fmt.Errorf("%q: missing colon", truncate(s, 40))
	}
	if i == 0 {
		return fmt.Errorf("%q: empty property name", truncate(s, 40))
	}
	name := s[:i]
	s = s[i:]
	for len(s) > 0 && s[0] == ';' {
		s = s[1:]
		eq := strings.IndexByte(s, '=')
		if eq < 0 {
			return fmt.Errorf("%s: parameter without '='", name)
		}
		if eq == 0 {
			return fmt.Errorf("%s: empty parameter name", name)
		}
		s = s[eq+1:]
		for {
			vlen := 0
			if len(s) > 0 && s[0] == '"' {
				end := strings.IndexByte(s[1:], '"')
				if end < 0 {
					return fmt.Errorf("%s: unterminated quoted parameter value", name)
				}
				vlen = end
				s = s[end+2:]
			} else {
				j := strings.IndexAny(s, "\";,:")
				if j < 0 {
					return fmt.Errorf("%s: line ends inside its parameters (missing ':')", name)
				}
				if s[j] == '"' {
					return fmt.Errorf("%s: double quote inside an unquoted parameter value", name)
				}
				vlen = j
				s = s[j:]
			}
			if vlen > maxParamValue {
				return fmt.Errorf("%s: parameter value longer than %d bytes", name, maxParamValue)
			}
			if *budget -= vlen * vlen; *budget < 0 {
				return fmt.Errorf("%s: too many long parameter values in the file", name)
			}
			if len(s) == 0 {
				return fmt.Errorf("%s: line ends inside its parameters (missing ':')", name)
			}
			if s[0] == ',' {
				s = s[1:]
				continue
			}
			if s[0] != ';' && s[0] != ':' {
				return fmt.Errorf("%s: unexpected %q after a parameter value", name, s[0])
			}
			break
		}
	}
	if len(s) == 0 || s[0] != ':' {
		return fmt.Errorf("%s: missing ':' before the value", name)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func propText(p *ical.Prop) string {
	if p == nil {
		return ""
	}
	if t, err := p.Text(); err == nil {
		return t
	}
	return p.Value
}

var windowsZones = map[string]string{
	"romance standard time":          "Europe/Paris",
	"w. europe standard time":        "Europe/Berlin",
	"central europe standard time":   "Europe/Budapest",
	"central european standard time": "Europe/Warsaw",
	"gmt standard time":              "Europe/London",
	"utc":                            "UTC",
	"coordinated universal time":     "UTC",
}

// zone resolves a TZID: an IANA name, a VTIMEZONE's X-LIC-LOCATION, a
// prefixed IANA name ("/mozilla.org/20050126_1/Europe/Paris") or a few
// Windows names. VTIMEZONE rules themselves are not interpreted.
func (p *parser) zone(tzid string) (*time.Location, error) {
	tzid = strings.Trim(tzid, `"`)
	if l, ok := p.zones[tzid]; ok {
		if l == nil {
			return nil, fmt.Errorf("unknown TZID %q (not an IANA time zone name)", tzid)
		}
		return l, nil
	}
	try := func(name string) *time.Location {
		if name == "" || strings.EqualFold(name, "local") || len(name) > 64 {
			return nil
		}
		l, err := time.LoadLocation(name)
		if err != nil {
			return nil
		}
		return l
	}
	l := try(tzid)
	if l == nil {
		if a, ok := p.aliases[tzid]; ok {
			l = try(a)
		}
	}
	if l == nil {
		if w, ok := windowsZones[strings.ToLower(tzid)]; ok {
			l = try(w)
		}
	}
	if l == nil && strings.Contains(tzid, "/") {
		parts := strings.Split(strings.Trim(tzid, "/"), "/")
		for i := 1; i < len(parts) && l == nil; i++ {
			l = try(strings.Join(parts[i:], "/"))
		}
	}
	p.zones[tzid] = l
	if l == nil {
		return nil, fmt.Errorf("unknown TZID %q (not an IANA time zone name)", tzid)
	}
	return l, nil
}

// parseTime parses one DATE or DATE-TIME value with the property's
// parameters. Dates are midnight in the rota location.
func (p *parser) parseTime(v string, params ical.Params) (t time.Time, isDate bool, err error) {
	v = strings.TrimSpace(v)
	if strings.EqualFold(params.Get(ical.ParamValue), "DATE") || (len(v) == 8 && allDigits(v)) {
		t, err = time.ParseInLocation("20060102", v, p.loc)
		if err != nil {
			return t, true, fmt.Errorf("bad date %q (want YYYYMMDD)", v)
		}
		return t, true, nil
	}
	if strings.HasSuffix(v, "Z") || strings.HasSuffix(v, "z") {
		t, err = time.Parse("20060102T150405", strings.ToUpper(v[:len(v)-1]))
		if err != nil {
			return t, false, fmt.Errorf("bad UTC date-time %q (want YYYYMMDDTHHMMSSZ)", v)
		}
		return t.UTC(), false, nil
	}
	loc := p.loc
	if tzid := params.Get(ical.PropTimezoneID); tzid != "" {
		if loc, err = p.zone(tzid); err != nil {
			return time.Time{}, false, err
		}
	}
	t, err = time.ParseInLocation("20060102T150405", strings.ToUpper(v), loc)
	if err != nil {
		return t, false, fmt.Errorf("bad date-time %q (want YYYYMMDDTHHMMSS)", v)
	}
	return t, false, nil
}

func (p *parser) parseEvent(c *ical.Component, line int) (ev *event, recurID *time.Time, recurDate, cancelled bool, err error) {
	uid := propText(c.Props.Get(ical.PropUID))
	fail := func(prop string, e error) error {
		return &ParseError{Line: line, Prop: prop, UID: uid, Err: e}
	}
	ev = &event{line: line}
	ev.tmpl.UID = uid
	ev.tmpl.Summary = propText(c.Props.Get(ical.PropSummary))
	ev.tmpl.Description = propText(c.Props.Get(ical.PropDescription))
	ev.tmpl.Location = propText(c.Props.Get(ical.PropLocation))
	for _, a := range c.Props.Values(ical.PropAttendee) {
		addr := a.Value
		if len(addr) >= 7 && strings.EqualFold(addr[:7], "mailto:") {
			addr = addr[7:]
		}
		cn := strings.Trim(a.Params.Get(ical.ParamCommonName), `"`)
		switch {
		case cn != "" && addr != "":
			ev.tmpl.Attendees = append(ev.tmpl.Attendees, cn+" <"+addr+">")
		case cn != "":
			ev.tmpl.Attendees = append(ev.tmpl.Attendees, cn)
		case addr != "":
			ev.tmpl.Attendees = append(ev.tmpl.Attendees, addr)
		}
	}
	for i := range c.Props.Values(ical.PropCategories) {
		cp := &c.Props.Values(ical.PropCategories)[i]
		l, err := cp.TextList()
		if err != nil {
			l = strings.Split(cp.Value, ",")
		}
		for _, s := range l {
			if s = strings.TrimSpace(s); s != "" {
				ev.tmpl.Categories = append(ev.tmpl.Categories, s)
			}
		}
	}
	cancelled = strings.EqualFold(strings.TrimSpace(propText(c.Props.Get(ical.PropStatus))), "CANCELLED")

	ds := c.Props.Get(ical.PropDateTimeStart)
	if ds == nil {
		return nil, nil, false, false, fail("DTSTART", errors.New("missing"))
	}
	start, allDay, err := p.parseTime(ds.Value, ds.Params)
	if err != nil {
		return nil, nil, false, false, fail("DTSTART", err)
	}
	if y := start.Year(); y < minYear || y > maxYear {
		return nil, nil, false, false, fail("DTSTART", fmt.Errorf("year %d outside %d-%d", y, minYear, maxYear))
	}
	ev.start, ev.allDay = start, allDay

	var exact time.Duration // first occurrence's length
	if de := c.Props.Get(ical.PropDateTimeEnd); de != nil {
		end, endDate, err := p.parseTime(de.Value, de.Params)
		if err != nil {
			return nil, nil, false, false, fail("DTEND", err)
		}
		if endDate != allDay {
			return nil, nil, false, false, fail("DTEND", errors.New("DTSTART and DTEND must both be dates or both date-times"))
		}
		if end.Before(start) {
			return nil, nil, false, false, fail("DTEND", fmt.Errorf("%s is before DTSTART %s", de.Value, ds.Value))
		}
		exact = end.Sub(start)
		if exact > MaxShiftDuration {
			return nil, nil, false, false, fail("DTEND", fmt.Errorf("event longer than %v", MaxShiftDuration))
		}
		if end.Location() == start.Location() && start.Location() != time.UTC {
			// Wall-clock end: a 20:00-08:00 night stays 20:00-08:00
			// across DST changes.
			sy, sm, sd := start.Date()
			ey, em, ed := end.Date()
			ev.end = endWall
			ev.days = int(time.Date(ey, em, ed, 0, 0, 0, 0, time.UTC).Sub(time.Date(sy, sm, sd, 0, 0, 0, 0, time.UTC)) / (24 * time.Hour))
			ev.endSec = end.Hour()*3600 + end.Minute()*60 + end.Second()
		} else {
			ev.end, ev.dur = endExact, exact
		}
	} else if du := c.Props.Get(ical.PropDuration); du != nil {
		d, err := du.Duration()
		if err != nil {
			return nil, nil, false, false, fail("DURATION", err)
		}
		if d < 0 || d > MaxShiftDuration {
			return nil, nil, false, false, fail("DURATION", fmt.Errorf("%s outside 0 to %v", du.Value, MaxShiftDuration))
		}
		exact = d
		if d%(24*time.Hour) == 0 && !strings.Contains(strings.ToUpper(du.Value), "T") {
			ev.end, ev.days = endWallSame, int(d/(24*time.Hour)) // nominal days
		} else {
			ev.end, ev.dur = endExact, d
		}
	} else if allDay {
		ev.end, ev.days, exact = endWallSame, 1, 24*time.Hour
	} else {
		ev.end, ev.dur = endExact, 0
	}
	ev.lookbak = exact + lookbackSlack

	if rp := c.Props.Get(ical.PropRecurrenceID); rp != nil {
		rid, isDate, err := p.parseTime(rp.Value, rp.Params)
		if err != nil {
			return nil, nil, false, false, fail("RECURRENCE-ID", err)
		}
		return ev, &rid, isDate, cancelled, nil
	}
	if cancelled {
		return ev, nil, false, true, nil
	}

	for _, rp := range c.Props.Values(ical.PropRecurrenceRule) {
		if err := p.addRule(ev, rp.Value); err != nil {
			return nil, nil, false, false, fail("RRULE", err)
		}
	}
	for _, rp := range c.Props.Values(ical.PropRecurrenceDates) {
		for _, v := range strings.Split(rp.Value, ",") {
			if strings.EqualFold(rp.Params.Get(ical.ParamValue), "PERIOD") || strings.Contains(v, "/") {
				v, _, _ = strings.Cut(v, "/") // the period's own end is not used
			}
			t, _, err := p.parseTime(v, rp.Params)
			if err != nil {
				return nil, nil, false, false, fail("RDATE", err)
			}
			ev.fixed = append(ev.fixed, t)
		}
	}
	for _, xp := range c.Props.Values(ical.PropExceptionDates) {
		for _, v := range strings.Split(xp.Value, ",") {
			t, isDate, err := p.parseTime(v, xp.Params)
			if err != nil {
				return nil, nil, false, false, fail("EXDATE", err)
			}
			if isDate && !allDay {
				if ev.exdays == nil {
					ev.exdays = map[civilDay]bool{}
				}
				ev.exdays[dayOf(t)] = true
				continue
			}
			if ev.exdates == nil {
				ev.exdates = map[int64]bool{}
			}
			ev.exdates[t.Unix()] = true
		}
	}
	sort.Slice(ev.fixed, func(i, j int) bool { return ev.fixed[i].Before(ev.fixed[j]) })
	return ev, nil, false, false, nil
}

// addRule validates an RRULE and either keeps it for expansion on demand
// or, with COUNT, expands it once.
func (p *parser) addRule(ev *event, value string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%q: %v", truncate(value, 80), r)
		}
	}()
	value = strings.ToUpper(strings.TrimSpace(value))
	o, err := rrule.StrToROptionInLocation(value, ev.start.Location())
	if err != nil {
		return fmt.Errorf("%q: %v", truncate(value, 80), err)
	}
	if o.Freq > rrule.DAILY {
		return fmt.Errorf("FREQ=%v not supported (DAILY, WEEKLY, MONTHLY or YEARLY)", o.Freq)
	}
	if o.Interval > maxInterval {
		return fmt.Errorf("INTERVAL=%d above %d", o.Interval, maxInterval)
	}
	if o.Count > maxCount {
		return fmt.Errorf("COUNT=%d above %d", o.Count, maxCount)
	}
	if len(o.Byeaster) > 0 {
		return errors.New("BYEASTER not supported")
	}
	if !o.Until.IsZero() && !ev.allDay && untilIsDate(value) {
		// A date-only UNTIL on a timed event: include that whole day.
		o.Until = o.Until.AddDate(0, 0, 1).Add(-time.Second)
	}
	o.Dtstart = ev.start
	pinDefaults(o)
	if n := len(o.Byhour) * len(o.Byminute) * len(o.Bysecond); n > maxTimesPerDay {
		return fmt.Errorf("%d times per day (BYHOUR × BYMINUTE × BYSECOND) above %d", n, maxTimesPerDay)
	}
	if _, err := rrule.NewRRule(*o); err != nil {
		return fmt.Errorf("%q: %v", truncate(value, 80), err)
	}
	// A rule whose BY* parts never match would make expansion run to year
	// 9999 on every call: probe a late decade (same period alignment) and
	// drop the rule if it yields nothing there.
	probe := *o
	probe.Count, probe.Until = 0, time.Time{}
	probe.Dtstart = alignedStart(probe, time.Date(9985, 1, 1, 0, 0, 0, 0, ev.start.Location()))
	pr, err := rrule.NewRRule(probe)
	if err != nil {
		return fmt.Errorf("%q: %v", truncate(value, 80), err)
	}
	if _, ok := pr.Iterator()(); !ok {
		return nil // never matches: no occurrences besides DTSTART
	}
	if o.Count > 0 {
		rr, _ := rrule.NewRRule(*o)
		next := rr.Iterator()
		for i := 0; i < o.Count; i++ {
			t, ok := next()
			if !ok || t.Year() > maxYear+2 {
				break
			}
			ev.fixed = append(ev.fixed, t)
		}
		return nil
	}
	ev.rules = append(ev.rules, *o)
	return nil
}

func untilIsDate(rule string) bool {
	for _, part := range strings.Split(rule, ";") {
		if v, ok := strings.CutPrefix(part, "UNTIL="); ok {
			return len(v) == 8
		}
	}
	return false
}
