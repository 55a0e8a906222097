package calendar

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultLoadTimeout bounds fetching a rota over HTTP when the context has
// no earlier deadline.
const DefaultLoadTimeout = 30 * time.Second

// LoadRota reads a rota from src: an http(s):// (or webcal://, fetched over
// https) URL, or a file path. The body is limited to MaxRotaSize and an
// HTTP fetch to DefaultLoadTimeout. Errors name src (with any user
// password and query string redacted).
func LoadRota(ctx context.Context, src string, loc *time.Location) (*Rota, error) {
	return loadRota(ctx, src, loc, nil)
}

func isURL(src string) bool {
	l := strings.ToLower(src)
	return strings.HasPrefix(l, "http://") || strings.HasPrefix(l, "https://") || strings.HasPrefix(l, "webcal://")
}

// redactSource hides credentials a calendar URL may carry (user info,
// query tokens) so that errors and logs can name the source.
func redactSource(src string) string {
	if !isURL(src) {
		return src
	}
	u, err := url.Parse(src)
	if err != nil {
		return "<unparsable URL>"
	}
	if u.User != nil {
		u.User = url.User("xxxxx")
	}
	if u.RawQuery != "" {
		u.RawQuery = "xxxxx"
	}
	return u.String()
}

func loadRota(ctx context.Context, src string, loc *time.Location, client *http.Client) (*Rota, error) {
	name := redactSource(src)
	data, err := fetch(ctx, src, client)
	if err != nil {
		return nil, fmt.Errorf("calendar: rota %s: %w", name, err)
	}
	rota, err := parseRota(data, orDefault(loc))
	if err != nil {
		return nil, fmt.Errorf("calendar: rota %s: %w", name, err)
	}
	return rota, nil
}

var errTooLarge = fmt.Errorf("larger than the %d MiB limit", MaxRotaSize>>20)

func fetch(ctx context.Context, src string, client *http.Client) ([]byte, error) {
	if src == "" {
		return nil, errors.New("empty source")
	}
	if !isURL(src) {
		f, err := os.Open(src)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if st, err := f.Stat(); err == nil && st.Mode().IsRegular() && st.Size() > MaxRotaSize {
			return nil, errTooLarge
		}
		return readLimited(f)
	}
	if strings.HasPrefix(strings.ToLower(src), "webcal://") {
		src = "https://" + src[len("webcal://"):]
	}
	if client == nil {
		client = http.DefaultClient
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultLoadTimeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
	if err != nil {
		return nil, errors.New("invalid URL")
	}
	req.Header.Set("Accept", "text/calendar, */*;q=0.5")
	resp, err := client.Do(req)
	if err != nil {
		// *url.Error repeats the (unredacted) URL: keep only the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("GET: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil, fmt.Errorf("GET: HTTP %s", resp.Status)
	}
	if resp.ContentLength > MaxRotaSize {
		return nil, errTooLarge
	}
	return readLimited(resp.Body)
}

func readLimited(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxRotaSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxRotaSize {
		return nil, errTooLarge
	}
	return data, nil
}

// Source is a reloadable rota: Reload fetches and parses src again and
// swaps the new Rota in; on error the previous Rota stays in use. Safe for
// concurrent use.
type Source struct {
	src    string
	loc    *time.Location
	client *http.Client
	mu     sync.Mutex // serialises Reload
	cur    atomic.Pointer[Rota]
	loaded atomic.Pointer[time.Time]
}

// NewSource returns a Source for src (see LoadRota). client may be nil
// (http.DefaultClient). Nothing is loaded until Reload.
func NewSource(src string, loc *time.Location, client *http.Client) *Source {
	return &Source{src: src, loc: orDefault(loc), client: client}
}

// Reload loads src again. On success the new Rota replaces the current
// one and is returned; on error the current one (possibly nil) is kept
// and returned with the error.
func (s *Source) Reload(ctx context.Context) (*Rota, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := loadRota(ctx, s.src, s.loc, s.client)
	if err != nil {
		return s.cur.Load(), err
	}
	s.cur.Store(r)
	now := time.Now()
	s.loaded.Store(&now)
	return r, nil
}

// Rota returns the current rota, nil before the first successful Reload.
func (s *Source) Rota() *Rota { return s.cur.Load() }

// LoadedAt returns when the current rota was loaded (zero if never).
func (s *Source) LoadedAt() time.Time {
	if t := s.loaded.Load(); t != nil {
		return *t
	}
	return time.Time{}
}

// String names the source (redacted).
func (s *Source) String() string { return redactSource(s.src) }

// At is Rota().At(t); nil rota: no shifts.
func (s *Source) At(t time.Time) []Shift { return s.cur.Load().At(t) }

// OnCall is Rota().OnCall(t, match); false before the first load.
func (s *Source) OnCall(t time.Time, match string) bool { return s.cur.Load().OnCall(t, match) }
