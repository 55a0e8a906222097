package calendar

import (
	"sort"
	"strings"
	"time"
)

// Day is a calendar date. Year 0 means "every year" where documented.
type Day struct {
	Year  int
	Month time.Month
	Day   int
}

// String formats d as YYYY-MM-DD, or MM-DD when Year is 0.
func (d Day) String() string {
	if d.Year == 0 {
		return time.Date(2000, d.Month, d.Day, 0, 0, 0, 0, time.UTC).Format("01-02")
	}
	return time.Date(d.Year, d.Month, d.Day, 0, 0, 0, 0, time.UTC).Format("2006-01-02")
}

func (d Day) matches(y int, m time.Month, dd int) bool {
	return (d.Year == 0 || d.Year == y) && d.Month == m && d.Day == dd
}

// ExtraHoliday is a site-specific day off added to the national list.
type ExtraHoliday struct {
	Day  Day    // Year 0: every year on that month and day
	Name string // e.g. "Pont de l'Ascension"
}

// FrenchOptions configures French.
type FrenchOptions struct {
	// Location in which an instant's date is taken; nil means Europe/Paris.
	Location *time.Location
	// AlsaceMoselle adds Vendredi saint and Saint-Étienne (26 December),
	// public holidays in Bas-Rhin, Haut-Rhin and Moselle.
	AlsaceMoselle bool
	// Extra days off (a "pont", a local feast).
	Extra []ExtraHoliday
	// Removed days that are worked although listed (Year 0: every year).
	Removed []Day
	// RemovedNames removes holidays by name, case-insensitively, every year:
	// e.g. "Lundi de Pentecôte" for a site working the journée de solidarité.
	RemovedNames []string
}

// Holidays answers whether a date is a public holiday. It is immutable and
// safe for concurrent use.
type Holidays struct {
	loc          *time.Location
	alsace       bool
	extra        []ExtraHoliday
	removed      []Day
	removedNames []string
}

// Holiday is one dated public holiday.
type Holiday struct {
	Date time.Time // midnight, in the Holidays' location
	Name string
}

// Names of the French public holidays.
const (
	JourDeLAn        = "Jour de l'an"
	VendrediSaint    = "Vendredi saint"
	LundiDePaques    = "Lundi de Pâques"
	FeteDuTravail    = "Fête du Travail"
	Victoire1945     = "Victoire 1945"
	Ascension        = "Ascension"
	LundiDePentecote = "Lundi de Pentecôte"
	FeteNationale    = "Fête nationale"
	Assomption       = "Assomption"
	Toussaint        = "Toussaint"
	Armistice1918    = "Armistice 1918"
	Noel             = "Noël"
	SaintEtienne     = "Saint-Étienne"
)

// French returns the French public holidays: the 11 national ones, plus
// Vendredi saint and 26 December with AlsaceMoselle, adjusted by the options.
func French(opts FrenchOptions) *Holidays {
	h := &Holidays{
		loc:     orDefault(opts.Location),
		alsace:  opts.AlsaceMoselle,
		extra:   append([]ExtraHoliday(nil), opts.Extra...),
		removed: append([]Day(nil), opts.Removed...),
	}
	for _, n := range opts.RemovedNames {
		h.removedNames = append(h.removedNames, strings.ToLower(strings.TrimSpace(n)))
	}
	return h
}

// Location returns the location in which dates are taken.
func (h *Holidays) Location() *time.Location { return h.loc }

// Easter returns the month and day of Easter Sunday in the Gregorian
// calendar (anonymous Gregorian algorithm, Meeus/Jones/Butcher).
func Easter(year int) (time.Month, int) {
	a := year % 19
	b := year / 100
	c := year % 100
	d := b / 4
	e := b % 4
	f := (b + 8) / 25
	g := (b - f + 1) / 3
	hh := (19*a + b - d - g + 15) % 30
	i := c / 4
	k := c % 4
	l := (32 + 2*e + 2*i - hh - k) % 7
	m := (a + 11*hh + 22*l) / 451
	month := (hh + l - 7*m + 114) / 31
	day := (hh+l-7*m+114)%31 + 1
	return time.Month(month), day
}

type namedDay struct {
	m    time.Month
	d    int
	name string
}

// national returns the (unfiltered) statutory list for year.
func (h *Holidays) national(year int) []namedDay {
	em, ed := Easter(year)
	easter := time.Date(year, em, ed, 12, 0, 0, 0, time.UTC)
	rel := func(days int, name string) namedDay {
		t := easter.AddDate(0, 0, days)
		return namedDay{t.Month(), t.Day(), name}
	}
	l := []namedDay{
		{time.January, 1, JourDeLAn},
		rel(1, LundiDePaques),
		{time.May, 1, FeteDuTravail},
		{time.May, 8, Victoire1945},
		rel(39, Ascension),
		rel(50, LundiDePentecote),
		{time.July, 14, FeteNationale},
		{time.August, 15, Assomption},
		{time.November, 1, Toussaint},
		{time.November, 11, Armistice1918},
		{time.December, 25, Noel},
	}
	if h.alsace {
		l = append(l, rel(-2, VendrediSaint), namedDay{time.December, 26, SaintEtienne})
	}
	return l
}

func (h *Holidays) isRemoved(y int, m time.Month, d int, name string) bool {
	for _, r := range h.removed {
		if r.matches(y, m, d) {
			return true
		}
	}
	if name != "" {
		ln := strings.ToLower(name)
		for _, n := range h.removedNames {
			if n == ln {
				return true
			}
		}
	}
	return false
}

// Holiday reports whether t's date, taken in h's location, is a public
// holiday, and its name. Extra days come first; removed days are never
// holidays.
func (h *Holidays) Holiday(t time.Time) (name string, ok bool) {
	if h == nil {
		return "", false
	}
	y, m, d := t.In(h.loc).Date()
	return h.holidayOn(y, m, d)
}

func (h *Holidays) holidayOn(y int, m time.Month, d int) (string, bool) {
	for _, e := range h.extra {
		if e.Day.matches(y, m, d) && !h.isRemoved(y, m, d, e.Name) {
			return e.Name, true
		}
	}
	for _, nd := range h.national(y) {
		if nd.m == m && nd.d == d {
			if h.isRemoved(y, m, d, nd.name) {
				return "", false
			}
			return nd.name, true
		}
	}
	return "", false
}

// IsHoliday is Holiday without the name.
func (h *Holidays) IsHoliday(t time.Time) bool {
	_, ok := h.Holiday(t)
	return ok
}

// Year lists the holidays of year in date order (after extra and removed
// days are applied).
func (h *Holidays) Year(year int) []Holiday {
	var out []Holiday
	seen := map[time.Time]bool{}
	add := func(m time.Month, d int) {
		dt := time.Date(year, m, d, 0, 0, 0, 0, h.loc)
		if seen[dt] {
			return
		}
		if name, ok := h.holidayOn(year, m, d); ok {
			seen[dt] = true
			out = append(out, Holiday{Date: dt, Name: name})
		}
	}
	for _, nd := range h.national(year) {
		add(nd.m, nd.d)
	}
	for _, e := range h.extra {
		if e.Day.Year == 0 || e.Day.Year == year {
			add(e.Day.Month, e.Day.Day)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Date.Before(out[j].Date) })
	return out
}
