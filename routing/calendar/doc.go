// Package calendar owns the time-related facts the routing engine evaluates
// rules against: French public holidays (national, Alsace-Moselle, plus
// site-specific extra and removed days), admin-friendly time windows
// ("lun-ven 08:00-18:30", "20:00-08:00", "Sat,Sun") with the Weekend and
// Night helpers, and on-call rotas read from iCalendar (.ics) files or URLs.
//
// Nothing here reads the wall clock: every question takes the instant
// explicitly (the routing engine passes an instance's arrival time, so a
// replay gives the same answer) and is answered in an explicit
// *time.Location, Europe/Paris by default. The IANA time zone database is
// embedded (time/tzdata), so hosts without tzdata behave the same.
//
// Values are immutable once built and safe for concurrent use; a Source
// reloads a rota by building a new Rota and swapping it in atomically.
package calendar

import (
	"time"
	_ "time/tzdata" // Europe/Paris must load on hosts without /usr/share/zoneinfo.
)

// DefaultZone is the time zone used when a nil *time.Location is given.
const DefaultZone = "Europe/Paris"

var defaultLoc = func() *time.Location {
	loc, err := time.LoadLocation(DefaultZone)
	if err != nil {
		// Cannot happen with time/tzdata embedded.
		panic("calendar: loading " + DefaultZone + ": " + err.Error())
	}
	return loc
}()

// Paris returns the Europe/Paris location (loaded once).
func Paris() *time.Location { return defaultLoc }

func orDefault(loc *time.Location) *time.Location {
	if loc == nil {
		return defaultLoc
	}
	return loc
}
