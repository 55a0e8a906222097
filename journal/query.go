package journal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Filter selects events for Query. Zero fields match everything.
type Filter struct {
	// Since and Until bound Event.Time (Since inclusive, Until exclusive).
	Since, Until time.Time
	// Kinds are prefixes of Event.Kind: "association" matches
	// "association.accepted", "association.released", ...
	Kinds []string
	// AE matches the calling (Event.AE) or the called AE title.
	AE string
	// User matches the authenticated user of HTTP events (Event.User).
	User           string
	StudyUID       string
	SOPInstanceUID string
	// Limit stops after that many matching events (0: no limit).
	Limit int
	// Reverse returns the newest events first.
	Reverse bool
}

// ParseWhen reads a bound of a journal query: a time (RFC 3339, with or
// without its zone, or a date, in the local zone) or a duration back from
// now ("90m"); "" is no bound (the zero time).
func ParseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is neither a time (RFC 3339, 2006-01-02) nor a duration (90m)", s)
}

// timeSlack bounds how far out of order event times may be for segment
// pruning by time (times are assigned by Append, so they are in order unless
// a caller supplied its own).
const timeSlack = 5 * time.Minute

func (f *Filter) match(ev *Event) bool {
	if !f.Since.IsZero() && ev.Time.Before(f.Since) {
		return false
	}
	if !f.Until.IsZero() && !ev.Time.Before(f.Until) {
		return false
	}
	if len(f.Kinds) > 0 {
		ok := false
		for _, k := range f.Kinds {
			if strings.HasPrefix(ev.Kind, k) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if f.AE != "" && ev.AE != f.AE && ev.CalledAE != f.AE {
		return false
	}
	if f.User != "" && ev.User != f.User {
		return false
	}
	if f.StudyUID != "" && ev.StudyUID != f.StudyUID {
		return false
	}
	if f.SOPInstanceUID != "" && ev.SOPInstanceUID != f.SOPInstanceUID {
		return false
	}
	return true
}

// quickReject cheaply rejects a raw line that cannot match (before decoding).
func (f *Filter) quickReject(line []byte) bool {
	if f.StudyUID != "" && !bytes.Contains(line, []byte(f.StudyUID)) {
		return true
	}
	if f.SOPInstanceUID != "" && !bytes.Contains(line, []byte(f.SOPInstanceUID)) {
		return true
	}
	if f.AE != "" && !bytes.Contains(line, []byte(f.AE)) {
		return true
	}
	if f.User != "" && !bytes.Contains(line, []byte(f.User)) {
		return true
	}
	return false
}

// firstTime returns the time of the first event of a segment.
func firstTime(ctx context.Context, path string) (time.Time, bool) {
	var t time.Time
	found := false
	_ = readSegment(ctx, path, func(line []byte, _ int64) error {
		if ev, err := parseLine(line); err == nil {
			t, found = ev.Time, true
		}
		return errStop
	})
	return t, found
}

// Query calls fn for the events of the journal in dir that match f, oldest
// first (newest first with f.Reverse). It is read-only and takes no lock: it
// may run while another process appends. A partial last line (a write in
// progress) is ignored; a line with a bad checksum is logged and skipped.
// Returning an error from fn stops the query and returns that error.
func Query(ctx context.Context, dir string, f Filter, fn func(*Event) error) error {
	segs, err := listSegments(dir)
	if err != nil {
		return err
	}
	// Prune segments by time using the first event of each segment.
	lo, hi := 0, len(segs)
	if !f.Until.IsZero() {
		for hi > 0 {
			t, ok := firstTime(ctx, segs[hi-1].path)
			if ok && !t.Add(-timeSlack).Before(f.Until) {
				hi-- // every event of this segment is at/after Until
				continue
			}
			break
		}
	}
	if !f.Since.IsZero() {
		// Segment i can be skipped if segment i+1 starts before Since.
		for lo+1 < hi {
			t, ok := firstTime(ctx, segs[lo+1].path)
			if ok && t.Add(timeSlack).Before(f.Since) {
				lo++
				continue
			}
			break
		}
	}
	segs = segs[lo:hi]

	emitted := 0
	if !f.Reverse {
		for _, s := range segs {
			err := readSegment(ctx, s.path, func(line []byte, off int64) error {
				ev, ok := decodeForQuery(&f, s.path, line, off)
				if !ok {
					return nil
				}
				if err := fn(ev); err != nil {
					return err
				}
				emitted++
				if f.Limit > 0 && emitted >= f.Limit {
					return errStop
				}
				return nil
			})
			if errors.Is(err, errStop) {
				return nil
			}
			if err != nil {
				return err
			}
		}
		return nil
	}
	for i := len(segs) - 1; i >= 0; i-- {
		s := segs[i]
		keep := 0
		if f.Limit > 0 {
			keep = f.Limit - emitted
		}
		var matches []*Event
		err := readSegment(ctx, s.path, func(line []byte, off int64) error {
			ev, ok := decodeForQuery(&f, s.path, line, off)
			if !ok {
				return nil
			}
			matches = append(matches, ev)
			if keep > 0 && len(matches) > 2*keep {
				// Only the newest `keep` can be emitted: compact.
				matches = append(matches[:0], matches[len(matches)-keep:]...)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for k := len(matches) - 1; k >= 0; k-- {
			if err := fn(matches[k]); err != nil {
				return err
			}
			emitted++
			if f.Limit > 0 && emitted >= f.Limit {
				return nil
			}
		}
	}
	return nil
}

func decodeForQuery(f *Filter, path string, line []byte, off int64) (*Event, bool) {
	if f.quickReject(line) {
		return nil, false
	}
	ev, err := parseLine(line)
	if err != nil {
		slog.Warn("journal: skipping invalid record", "segment", path, "offset", off, "err", fmt.Sprint(err))
		return nil, false
	}
	return ev, f.match(ev)
}
