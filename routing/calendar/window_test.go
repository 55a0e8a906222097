package calendar

import (
	"strings"
	"testing"
	"time"
)

// 2026-03-23 is a Monday; 2026-03-29 (Sunday) and 2026-10-25 (Sunday) are
// the DST changes in Europe/Paris.
func paris(y int, m time.Month, d, hh, mm int) time.Time {
	return time.Date(y, m, d, hh, mm, 0, 0, Paris())
}

func TestParseWindowContains(t *testing.T) {
	cases := []struct {
		win  string
		at   time.Time
		want bool
	}{
		{"Mon-Fri 08:00-18:30", paris(2026, 3, 23, 8, 0), true},
		{"Mon-Fri 08:00-18:30", paris(2026, 3, 23, 7, 59), false},
		{"Mon-Fri 08:00-18:30", paris(2026, 3, 23, 18, 29), true},
		{"Mon-Fri 08:00-18:30", paris(2026, 3, 23, 18, 30), false},
		{"Mon-Fri 08:00-18:30", paris(2026, 3, 28, 10, 0), false}, // Saturday
		{"Mon-Fri 08:00-18:30", paris(2026, 3, 27, 10, 0), true},  // Friday
		{"Sat,Sun", paris(2026, 3, 28, 0, 0), true},
		{"Sat,Sun", paris(2026, 3, 29, 23, 59), true},
		{"Sat,Sun", paris(2026, 3, 30, 0, 0), false},
		{"20:00-08:00", paris(2026, 3, 23, 20, 0), true},
		{"20:00-08:00", paris(2026, 3, 24, 7, 59), true},
		{"20:00-08:00", paris(2026, 3, 24, 8, 0), false},
		{"20:00-08:00", paris(2026, 3, 24, 19, 59), false},
		{"Mon 00:00-24:00", paris(2026, 3, 23, 0, 0), true},
		{"Mon 00:00-24:00", paris(2026, 3, 23, 23, 59), true},
		{"Mon 00:00-24:00", paris(2026, 3, 24, 0, 0), false},
		{"lun-ven 08:00-18:00", paris(2026, 3, 25, 12, 0), true},
		{"lun-ven 08:00-18:00", paris(2026, 3, 29, 12, 0), false},
		{"Lundi-Vendredi 08h-12h,14h-18h", paris(2026, 3, 25, 13, 0), false},
		{"Lundi-Vendredi 08h-12h,14h-18h", paris(2026, 3, 25, 14, 0), true},
		{"sam, dim", paris(2026, 3, 28, 9, 0), true},
		{"Mon - Fri 08:00 - 18:00", paris(2026, 3, 23, 9, 0), true},
		// A night range belongs to the day it starts on.
		{"Fri 20:00-08:00", paris(2026, 3, 28, 3, 0), true},      // Saturday morning
		{"Fri 20:00-08:00", paris(2026, 3, 27, 3, 0), false},     // Friday morning (Thursday night)
		{"Mon-Fri 20:00-08:00", paris(2026, 3, 23, 3, 0), false}, // Monday morning: Sunday night
		{"Fri-Mon", paris(2026, 3, 29, 12, 0), true},             // wrapping day range
		{"Fri-Mon", paris(2026, 3, 25, 12, 0), false},
		// DST: 29 March 2026 02:00 → 03:00 Paris. The night 20:00-08:00 Sat→Sun.
		{"Sat 20:00-08:00", time.Date(2026, 3, 29, 0, 30, 0, 0, time.UTC), true}, // 01:30 CET
		{"Sat 20:00-08:00", time.Date(2026, 3, 29, 1, 30, 0, 0, time.UTC), true}, // 03:30 CEST
		{"Sat 20:00-08:00", time.Date(2026, 3, 29, 6, 0, 0, 0, time.UTC), false}, // 08:00 CEST
		{"Sat 20:00-08:00", time.Date(2026, 3, 29, 6, 59, 0, 0, time.UTC), false},
		{"Sat 20:00-08:00", time.Date(2026, 3, 29, 5, 59, 0, 0, time.UTC), true}, // 07:59 CEST
		// DST: 25 October 2026 03:00 → 02:00: both 02:30 are inside 02:00-03:00.
		{"Sun 02:00-03:00", time.Date(2026, 10, 25, 0, 30, 0, 0, time.UTC), true}, // 02:30 CEST
		{"Sun 02:00-03:00", time.Date(2026, 10, 25, 1, 30, 0, 0, time.UTC), true}, // 02:30 CET
		{"Sun 02:00-03:00", time.Date(2026, 10, 25, 2, 0, 0, 0, time.UTC), false}, // 03:00 CET
		{"Sun 08:00-18:00", time.Date(2026, 10, 25, 7, 0, 0, 0, time.UTC), true},  // 08:00 CET
		{"Sun 08:00-18:00", time.Date(2026, 10, 25, 6, 59, 0, 0, time.UTC), false},
	}
	for _, c := range cases {
		w, err := ParseWindow(c.win)
		if err != nil {
			t.Errorf("ParseWindow(%q): %v", c.win, err)
			continue
		}
		if got := w.Contains(c.at); got != c.want {
			t.Errorf("%q.Contains(%s) = %v, want %v", c.win, c.at.In(Paris()).Format("Mon 2006-01-02 15:04 MST"), got, c.want)
		}
	}
}

func TestWindowIn(t *testing.T) {
	w := MustParseWindow("Mon-Fri 08:00-18:00")
	at := time.Date(2026, 3, 23, 7, 30, 0, 0, time.UTC) // 08:30 Paris, 07:30 UTC
	if !w.Contains(at) {
		t.Error("Paris window should contain 08:30 Paris")
	}
	if w.In(time.UTC).Contains(at) {
		t.Error("UTC window should not contain 07:30 UTC")
	}
	if (Window{}).Contains(at) {
		t.Error("zero window contains nothing")
	}
	if w.String() != "Mon-Fri 08:00-18:00" {
		t.Errorf("String() = %q", w.String())
	}
}

func TestParseWindowErrors(t *testing.T) {
	cases := []struct{ in, mention string }{
		{"", "empty"},
		{"Mon-Fry 08:00-18:00", `"Fry"`},
		{"Mon-Fri 08:00-25:00", `"25:00"`},
		{"Mon-Fri 08:00", `"08:00"`},
		{"Mon-Fri 8-18", `"8"`},
		{"Mon-Fri 08:60-18:00", `"08:60"`},
		{"Mon-Fri 08:00-08:00", "empty"},
		{"Mon-Fri 24:00-08:00", "24:00"},
		{"Mon 08:00-12:00 Tue", `"Tue"`},
		{"Mon 08:00-12:00 14:00-18:00", `"14:00-18:00"`},
		{"lun,,mar", `""`},
	}
	for _, c := range cases {
		_, err := ParseWindow(c.in)
		if err == nil {
			t.Errorf("ParseWindow(%q): no error", c.in)
			continue
		}
		if !strings.Contains(err.Error(), c.mention) {
			t.Errorf("ParseWindow(%q) = %v, want mention of %s", c.in, err, c.mention)
		}
	}
}

func TestWeekendNight(t *testing.T) {
	from, to := MustTimeOfDay("20:00"), MustTimeOfDay("08:00")
	cases := []struct {
		at             time.Time
		weekend, night bool
	}{
		{paris(2026, 3, 27, 19, 59), false, false},
		{paris(2026, 3, 27, 20, 0), false, true},
		{paris(2026, 3, 28, 0, 0), true, true},
		{paris(2026, 3, 28, 8, 0), true, false},
		{paris(2026, 3, 29, 23, 59), true, true},
		{paris(2026, 3, 30, 7, 59), false, true},
		{time.Date(2026, 3, 27, 23, 30, 0, 0, time.UTC), true, true}, // Saturday 00:30 Paris
		{time.Date(2026, 3, 29, 6, 30, 0, 0, time.UTC), true, false}, // 08:30 CEST after the change
		{time.Date(2026, 10, 25, 6, 30, 0, 0, time.UTC), true, true}, // 07:30 CET
	}
	for _, c := range cases {
		if got := Weekend(c.at, nil); got != c.weekend {
			t.Errorf("Weekend(%s) = %v", c.at, got)
		}
		if got := Night(c.at, from, to, nil); got != c.night {
			t.Errorf("Night(%s) = %v", c.at, got)
		}
	}
	// In UTC, Friday 23:30 UTC is not the weekend.
	if Weekend(time.Date(2026, 3, 27, 23, 30, 0, 0, time.UTC), time.UTC) {
		t.Error("Weekend in UTC")
	}
	if !Night(paris(2026, 3, 23, 13, 0), MustTimeOfDay("12:00"), MustTimeOfDay("14:00"), nil) {
		t.Error("non-crossing range")
	}
}
