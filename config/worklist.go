package config

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Worklist assignment policies.
const (
	AssignLeastLoaded = "least-loaded"
	AssignRoundRobin  = "round-robin"
)

// Worklist configures the reading worklist: how studies made ready by
// routes (ready: true) are assigned, how long a claim holds, and the
// reading delays agreed per priority.
type Worklist struct {
	// Assignment within a pool: "least-loaded" (default: the reader on
	// call with the fewest scheduled and in-progress items) or
	// "round-robin".
	Assignment string `yaml:"assignment"`
	// Lock is how long a claim holds without renewal (default 15m); an
	// expired claim returns the item to scheduled.
	Lock Duration `yaml:"lock"`
	// SLA holds, per priority (STAT, URGENT, ROUTINE), the delays from the
	// study's ready time (its last image; in immediate mode its first
	// ready event) within which it must be claimed and reported. Missing
	// entries take DefaultSLA's.
	SLA map[string]SLA `yaml:"sla"`
	// EscalateBefore is how long before a deadline an item not yet claimed
	// (reported) is escalated: a duration ("5m", the default) or a
	// fraction of the delay ("0.25" or "25%"). It is never more than half
	// the delay (a 5m lead on a 5m delay would escalate on arrival).
	EscalateBefore string `yaml:"escalate_before"`
	// EscalationWebhook receives each escalation (POST, JSON; retried).
	EscalationWebhook string `yaml:"escalation_webhook"`
	// Check is how often lock expiries, escalations and overdue items are
	// checked (default 1s).
	Check Duration `yaml:"check"`
}

// SLA is a priority's reading delays.
type SLA struct {
	Claim  Duration `yaml:"claim"`
	Report Duration `yaml:"report"`
}

// DefaultSLA are the delays of a priority without worklist.sla entry.
var DefaultSLA = map[string]SLA{
	PriorityStat:    {Claim: Duration(5 * time.Minute), Report: Duration(20 * time.Minute)},
	PriorityUrgent:  {Claim: Duration(30 * time.Minute), Report: Duration(2 * time.Hour)},
	PriorityRoutine: {Claim: Duration(4 * time.Hour), Report: Duration(24 * time.Hour)},
}

// Worklist defaults.
const (
	DefaultWorklistLock   = 15 * time.Minute
	DefaultEscalateBefore = 5 * time.Minute
	DefaultWorklistCheck  = time.Second
)

// LockDuration is Lock or its default.
func (w Worklist) LockDuration() time.Duration {
	if w.Lock > 0 {
		return time.Duration(w.Lock)
	}
	return DefaultWorklistLock
}

// CheckInterval is Check or its default.
func (w Worklist) CheckInterval() time.Duration {
	if w.Check > 0 {
		return time.Duration(w.Check)
	}
	return DefaultWorklistCheck
}

// AssignmentPolicy is Assignment or its default.
func (w Worklist) AssignmentPolicy() string {
	if w.Assignment == "" {
		return AssignLeastLoaded
	}
	return w.Assignment
}

// SLAFor returns the delays of a priority ("" is ROUTINE), each missing
// one from DefaultSLA.
func (w Worklist) SLAFor(priority string) SLA {
	if priority == "" {
		priority = PriorityRoutine
	}
	d := DefaultSLA[priority]
	if d.Claim == 0 && d.Report == 0 {
		d = DefaultSLA[PriorityRoutine]
	}
	s := w.SLA[priority]
	if s.Claim > 0 {
		d.Claim = s.Claim
	}
	if s.Report > 0 {
		d.Report = s.Report
	}
	return d
}

// EscalationLead returns how long before a deadline of the given delay an
// item is escalated (EscalateBefore, at most half the delay).
func (w Worklist) EscalationLead(delay time.Duration) time.Duration {
	lead, frac, _ := parseEscalateBefore(w.EscalateBefore)
	if frac > 0 {
		lead = time.Duration(frac * float64(delay))
	}
	if lead > delay/2 {
		lead = delay / 2
	}
	return lead
}

// parseEscalateBefore: a duration, or a fraction in (0,1) ("0.25", "25%").
func parseEscalateBefore(s string) (time.Duration, float64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return DefaultEscalateBefore, 0, nil
	}
	if p, ok := strings.CutSuffix(s, "%"); ok {
		f, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || f <= 0 || f >= 100 {
			return 0, 0, fmt.Errorf("%q is not a percentage between 0 and 100", s)
		}
		return 0, f / 100, nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if f <= 0 || f >= 1 {
			return 0, 0, fmt.Errorf("%q: a fraction is between 0 and 1 (or give a duration such as 5m)", s)
		}
		return 0, f, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, 0, fmt.Errorf("%q is neither a duration (5m) nor a fraction (0.25, 25%%)", s)
	}
	return d, 0, nil
}

func (c *Config) validateWorklist() error {
	bad := func(key, format string, a ...any) error {
		return &KeyError{Key: key, Msg: fmt.Sprintf(format, a...)}
	}
	w := c.Worklist
	switch w.Assignment {
	case "", AssignLeastLoaded, AssignRoundRobin:
	default:
		return bad("worklist.assignment", "%q is not least-loaded or round-robin", w.Assignment)
	}
	if w.Lock < 0 {
		return bad("worklist.lock", "must not be negative")
	}
	if w.Check < 0 {
		return bad("worklist.check", "must not be negative")
	}
	for p, s := range w.SLA {
		switch p {
		case PriorityStat, PriorityUrgent, PriorityRoutine:
		default:
			return bad("worklist.sla."+p, "%q is not STAT, URGENT or ROUTINE", p)
		}
		if s.Claim < 0 || s.Report < 0 {
			return bad("worklist.sla."+p, "delays must not be negative")
		}
		if e := w.SLAFor(p); e.Report < e.Claim {
			return bad("worklist.sla."+p+".report", "%s is shorter than the claim delay %s", time.Duration(e.Report), time.Duration(e.Claim))
		}
	}
	if _, _, err := parseEscalateBefore(w.EscalateBefore); err != nil {
		return bad("worklist.escalate_before", "%v", err)
	}
	if w.EscalationWebhook != "" {
		if u, err := url.Parse(w.EscalationWebhook); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return bad("worklist.escalation_webhook", "%q is not an http(s) URL", w.EscalationWebhook)
		}
	}
	for i, r := range c.Routes {
		key := fmt.Sprintf("routes[%d] (%s)", i, r.Name)
		if r.Reader == "" && r.Pool == "" {
			continue
		}
		if !r.Ready {
			if r.Reader != "" {
				return bad(key+".reader", "a reader needs ready: true (the study goes on the worklist when the route makes it ready)")
			}
			return bad(key+".pool", "a pool needs ready: true (the study goes on the worklist when the route makes it ready)")
		}
		if r.Reader != "" && r.Pool != "" {
			return bad(key+".pool", "set reader or pool, not both")
		}
		if r.Pool != "" {
			if _, ok := c.Calendars[r.Pool]; !ok {
				names := make([]string, 0, len(c.Calendars))
				for n := range c.Calendars {
					names = append(names, n)
				}
				return bad(key+".pool", "unknown calendar %q (a pool is an on-call rota of calendars:; known: %s)", r.Pool, strings.Join(sortedStrings(names), ", "))
			}
		}
		if strings.TrimSpace(r.Reader) != r.Reader {
			return bad(key+".reader", "%q has surrounding spaces", r.Reader)
		}
	}
	return nil
}

func sortedStrings(s []string) []string {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	return s
}
