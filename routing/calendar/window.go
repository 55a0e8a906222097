package calendar

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// TimeOfDay is a wall-clock time as minutes since midnight, 0..1440 (1440
// is "24:00", only meaningful as the end of a range).
type TimeOfDay int

// ParseTimeOfDay parses "08:00", "8:30", "08h30", "8h" or "24:00".
func ParseTimeOfDay(s string) (TimeOfDay, error) {
	orig := s
	s = strings.ToLower(strings.TrimSpace(s))
	var hs, ms string
	if i := strings.IndexAny(s, ":h"); i >= 0 {
		hs, ms = s[:i], s[i+1:]
		if ms == "" && s[i] == 'h' {
			ms = "00"
		}
	} else {
		return 0, fmt.Errorf("time of day %q: want HH:MM", orig)
	}
	if len(hs) < 1 || len(hs) > 2 || len(ms) != 2 || !allDigits(hs) || !allDigits(ms) {
		return 0, fmt.Errorf("time of day %q: want HH:MM", orig)
	}
	h, _ := strconv.Atoi(hs)
	m, _ := strconv.Atoi(ms)
	if m > 59 || h > 24 || (h == 24 && m != 0) {
		return 0, fmt.Errorf("time of day %q: out of range (00:00 to 24:00)", orig)
	}
	return TimeOfDay(h*60 + m), nil
}

// MustTimeOfDay is ParseTimeOfDay that panics, for constants.
func MustTimeOfDay(s string) TimeOfDay {
	t, err := ParseTimeOfDay(s)
	if err != nil {
		panic("calendar: " + err.Error())
	}
	return t
}

func (t TimeOfDay) String() string { return fmt.Sprintf("%02d:%02d", int(t)/60, int(t)%60) }

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// clockOf returns the wall-clock minutes of t in loc.
func clockOf(lt time.Time) TimeOfDay {
	return TimeOfDay(lt.Hour()*60 + lt.Minute())
}

// span is a daily time range [From, To); From > To crosses midnight.
type span struct {
	From, To TimeOfDay
}

func (s span) String() string { return s.From.String() + "-" + s.To.String() }

// Window is a weekly recurring set of time ranges, such as
// "Mon-Fri 08:00-18:30". The zero Window contains nothing. A range that
// crosses midnight ("Fri 20:00-08:00") belongs to the day it starts on, so
// it covers Saturday 03:00. Windows are immutable values.
type Window struct {
	src   string
	days  [7]bool // indexed by time.Weekday
	spans []span  // empty: all day
	loc   *time.Location
}

var dayNames = map[string]time.Weekday{
	"mon": time.Monday, "monday": time.Monday, "lun": time.Monday, "lundi": time.Monday, "mo": time.Monday,
	"tue": time.Tuesday, "tues": time.Tuesday, "tuesday": time.Tuesday, "mar": time.Tuesday, "mardi": time.Tuesday, "tu": time.Tuesday,
	"wed": time.Wednesday, "wednesday": time.Wednesday, "mer": time.Wednesday, "mercredi": time.Wednesday, "we": time.Wednesday,
	"thu": time.Thursday, "thur": time.Thursday, "thurs": time.Thursday, "thursday": time.Thursday, "jeu": time.Thursday, "jeudi": time.Thursday, "th": time.Thursday,
	"fri": time.Friday, "friday": time.Friday, "ven": time.Friday, "vendredi": time.Friday, "fr": time.Friday,
	"sat": time.Saturday, "saturday": time.Saturday, "sam": time.Saturday, "samedi": time.Saturday, "sa": time.Saturday,
	"sun": time.Sunday, "sunday": time.Sunday, "dim": time.Sunday, "dimanche": time.Sunday, "su": time.Sunday,
}

func parseDayName(s string) (time.Weekday, error) {
	if d, ok := dayNames[strings.ToLower(strings.TrimSuffix(s, "."))]; ok {
		return d, nil
	}
	return 0, fmt.Errorf("unknown day %q (use Mon..Sun or lun..dim)", s)
}

// ParseWindow parses a window in Europe/Paris. See ParseWindowIn.
func ParseWindow(s string) (Window, error) { return ParseWindowIn(s, nil) }

// ParseWindowIn parses an admin-friendly window evaluated in loc (nil:
// Europe/Paris). The syntax is an optional day part followed by an
// optional time part, separated by spaces:
//
//	days  = item {"," item}; item = day | day "-" day   (ranges wrap: "Fri-Mon")
//	day   = Mon..Sun, Monday..Sunday, lun..dim, lundi..dimanche (any case)
//	times = range {"," range}; range = HH:MM "-" HH:MM  (also 8h, 08h30)
//
// Missing days mean every day; missing times mean the whole day. "24:00"
// ends a range at midnight; a range whose end is before its start crosses
// midnight. Examples: "Mon-Fri 08:00-18:30", "Sat,Sun", "20:00-08:00",
// "Mon 00:00-24:00", "lun-ven 08h-12h,14h-18h".
func ParseWindowIn(s string, loc *time.Location) (Window, error) {
	w := Window{src: s, loc: orDefault(loc)}
	if strings.TrimSpace(s) == "" {
		return Window{}, errors.New("window: empty")
	}
	// Normalise "Mon - Fri" and "08:00 - 18:00" into single fields.
	norm := strings.Join(strings.Fields(s), " ")
	norm = strings.ReplaceAll(norm, " - ", "-")
	norm = strings.ReplaceAll(norm, " , ", ",")
	norm = strings.ReplaceAll(norm, ", ", ",")
	fields := strings.Fields(norm)
	var dayPart, timePart string
	for _, f := range fields {
		isTime := f[0] >= '0' && f[0] <= '9'
		switch {
		case isTime && timePart == "":
			timePart = f
		case !isTime && dayPart == "" && timePart == "":
			dayPart = f
		default:
			return Window{}, fmt.Errorf("window %q: unexpected %q (want [days] [HH:MM-HH:MM])", s, f)
		}
	}
	if dayPart == "" {
		for i := range w.days {
			w.days[i] = true
		}
	} else {
		for _, item := range strings.Split(dayPart, ",") {
			a, b, isRange := strings.Cut(item, "-")
			from, err := parseDayName(a)
			if err != nil {
				return Window{}, fmt.Errorf("window %q: %v", s, err)
			}
			to := from
			if isRange {
				if to, err = parseDayName(b); err != nil {
					return Window{}, fmt.Errorf("window %q: %v", s, err)
				}
			}
			for d := from; ; d = (d + 1) % 7 {
				w.days[d] = true
				if d == to {
					break
				}
			}
		}
	}
	if timePart != "" {
		for _, r := range strings.Split(timePart, ",") {
			a, b, ok := strings.Cut(r, "-")
			if !ok {
				return Window{}, fmt.Errorf("window %q: time range %q: want HH:MM-HH:MM", s, r)
			}
			from, err := ParseTimeOfDay(a)
			if err != nil {
				return Window{}, fmt.Errorf("window %q: start of %q: %v", s, r, err)
			}
			to, err := ParseTimeOfDay(b)
			if err != nil {
				return Window{}, fmt.Errorf("window %q: end of %q: %v", s, r, err)
			}
			if from == 1440 {
				return Window{}, fmt.Errorf("window %q: range %q starts at 24:00", s, r)
			}
			if from == to {
				return Window{}, fmt.Errorf("window %q: range %q is empty (use 00:00-24:00 for a whole day)", s, r)
			}
			w.spans = append(w.spans, span{from, to})
		}
	}
	return w, nil
}

// MustParseWindow is ParseWindow that panics, for constants and tests.
func MustParseWindow(s string) Window {
	w, err := ParseWindow(s)
	if err != nil {
		panic("calendar: " + err.Error())
	}
	return w
}

// String returns the source text.
func (w Window) String() string { return w.src }

// Location returns the window's location.
func (w Window) Location() *time.Location { return orDefault(w.loc) }

// In returns a copy of w evaluated in loc.
func (w Window) In(loc *time.Location) Window {
	w.loc = orDefault(loc)
	w.spans = append([]span(nil), w.spans...)
	return w
}

// Contains reports whether t falls in the window, on the wall clock of the
// window's location. Around a DST change the wall clock is what counts:
// in the repeated hour both instants are in "02:00-03:00".
func (w Window) Contains(t time.Time) bool {
	if w.loc == nil && w.src == "" { // zero Window
		return false
	}
	lt := t.In(w.Location())
	wd := lt.Weekday()
	if len(w.spans) == 0 {
		return w.days[wd]
	}
	c := clockOf(lt)
	prev := (wd + 6) % 7
	for _, sp := range w.spans {
		if sp.From < sp.To {
			if w.days[wd] && c >= sp.From && c < sp.To {
				return true
			}
			continue
		}
		// Crosses midnight: the evening belongs to today, the morning to
		// the day before.
		if w.days[wd] && c >= sp.From {
			return true
		}
		if w.days[prev] && c < sp.To {
			return true
		}
	}
	return false
}

// Weekend reports whether t is a Saturday or Sunday in loc (nil:
// Europe/Paris).
func Weekend(t time.Time, loc *time.Location) bool {
	wd := t.In(orDefault(loc)).Weekday()
	return wd == time.Saturday || wd == time.Sunday
}

// Night reports whether t's wall clock in loc (nil: Europe/Paris) is in
// [from, to), crossing midnight when from > to: Night(t, 20:00, 08:00)
// is true from 20:00 to 07:59:59 every day. from == to is never night.
func Night(t time.Time, from, to TimeOfDay, loc *time.Location) bool {
	c := clockOf(t.In(orDefault(loc)))
	if from <= to {
		return c >= from && c < to
	}
	return c >= from || c < to
}
