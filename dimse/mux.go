package dimse

import (
	"context"
	"fmt"
	"runtime"
	"sort"
	"sync"
)

// ServeMux routes requests by (command field, SOP class). The SOP class is
// the request's Affected SOP Class UID, else its Requested SOP Class UID,
// else the abstract syntax of its presentation context. A request nothing
// matches is answered by the mux itself: 0x0211 (unrecognized operation)
// for a command field PS3.7 does not define, 0x0122 (SOP class not
// supported) otherwise.
type ServeMux struct {
	mu sync.RWMutex
	m  map[muxKey]muxEntry
}

type muxKey struct {
	field CommandField
	class string
}

type muxEntry struct {
	h      Handler
	caller string
}

// NewServeMux returns an empty ServeMux.
func NewServeMux() *ServeMux { return &ServeMux{m: make(map[muxKey]muxEntry)} }

// Handle registers h for requests with command field f (a request field
// such as CStoreRQ) on SOP class sopClass. Registering the same pair twice
// panics, naming both callers.
func (m *ServeMux) Handle(f CommandField, sopClass string, h Handler) {
	m.handle(f, sopClass, h, callerOf(2))
}

// HandleClasses registers h for command field f on each of sopClasses.
func (m *ServeMux) HandleClasses(f CommandField, sopClasses []string, h Handler) {
	c := callerOf(2)
	for _, s := range sopClasses {
		m.handle(f, s, h, c)
	}
}

func callerOf(skip int) string {
	_, file, line, ok := runtime.Caller(skip)
	if !ok {
		return "unknown"
	}
	return fmt.Sprintf("%s:%d", file, line)
}

func (m *ServeMux) handle(f CommandField, sopClass string, h Handler, caller string) {
	if h == nil {
		panic("dimse: nil handler for " + f.String() + " " + sopClass)
	}
	if f.IsResponse() || f == CCancelRQ {
		panic("dimse: cannot register a handler for " + f.String())
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil {
		m.m = make(map[muxKey]muxEntry)
	}
	k := muxKey{f, sopClass}
	if e, ok := m.m[k]; ok {
		panic(fmt.Sprintf("dimse: duplicate handler for %s %s: registered at %s and again at %s", f, sopClass, e.caller, caller))
	}
	m.m[k] = muxEntry{h: h, caller: caller}
}

// Handler returns the handler for (f, sopClass), or nil.
func (m *ServeMux) Handler(f CommandField, sopClass string) Handler {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.m[muxKey{f, sopClass}].h
}

// ServeDIMSE dispatches the request to the registered handler.
func (m *ServeMux) ServeDIMSE(ctx context.Context, w ResponseWriter, r *Request) {
	class := r.Command.AffectedSOPClassUID
	if class == "" {
		class = r.Command.RequestedSOPClassUID
	}
	if class == "" {
		class = r.Context.AbstractSyntax
	}
	if h := m.Handler(r.Command.Field, class); h != nil {
		h.ServeDIMSE(ctx, w, r)
		return
	}
	if !r.Command.Field.Known() || r.Command.Field.IsResponse() {
		w.Respond(Status{Code: StatusUnrecognizedOperation, Comment: "unrecognized command " + r.Command.Field.String()}, nil)
		return
	}
	w.Respond(Status{Code: StatusSOPClassNotSupported, Comment: r.Command.Field.String() + " not supported for " + class}, nil)
}

// Supports reports whether some handler is registered for sopClass.
func (m *ServeMux) Supports(sopClass string) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	for k := range m.m {
		if k.class == sopClass {
			return true
		}
	}
	return false
}

// AbstractSyntaxes returns the SOP classes the mux serves, sorted: the
// abstract syntaxes a Server accepts in negotiation.
func (m *ServeMux) AbstractSyntaxes() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	set := make(map[string]bool)
	for k := range m.m {
		set[k.class] = true
	}
	out := make([]string, 0, len(set))
	for c := range set {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}
