// Package config owns Relais's configuration: the YAML schema, its defaults
// (the ones that make a first run work with no file at all) and its
// validation. An invalid configuration fails at start with a message that
// names the offending key, so an admin never has to guess.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/relais-health/relais/coerce"
	"go.yaml.in/yaml/v3"
)

// Config is the whole configuration of a Relais node.
type Config struct {
	// AETitle is this node's Application Entity title.
	AETitle string `yaml:"ae_title"`
	// DataDir holds the index, the journal and (by default) the blobs.
	DataDir string `yaml:"data_dir"`
	// Listen holds the addresses of the listeners.
	Listen Listen `yaml:"listen"`
	// Limits bounds what a peer can make Relais do.
	Limits Limits `yaml:"limits"`
	// DICOM holds the association policy.
	DICOM DICOM `yaml:"dicom"`
	// RemoteAEs are the DICOM nodes Relais knows by name (C-MOVE destinations, routing).
	RemoteAEs []RemoteAE `yaml:"remote_aes"`
	// Storage selects the index and blob backends.
	Storage Storage `yaml:"storage"`
	// HTTP configures the HTTP services (DICOMweb, REST API).
	HTTP HTTP `yaml:"http"`
	// Destinations are where routes forward to, by name.
	Destinations map[string]Destination `yaml:"destinations"`
	// Calendars are on-call rotas (iCalendar), by name, for oncall("name").
	Calendars map[string]Calendar `yaml:"calendars"`
	// Holidays configures the public holidays holiday() knows.
	Holidays Holidays `yaml:"holidays"`
	// Routes are evaluated in order for every stored instance; the first
	// that matches decides unless it says continue.
	Routes []Route `yaml:"routes"`
	// Routing tunes the delivery queues.
	Routing Routing `yaml:"routing"`
	// Organisations are the health organisations Relais knows by id
	// (FINESS): the report's custodian, the requesting facilities.
	Organisations map[string]Organisation `yaml:"organisations"`
	// Professionals are the health professionals by id (RPPS): report
	// authors and legal authenticators, bound to token users.
	Professionals map[string]Professional `yaml:"professionals"`
	// Sites are the requesting sites: where studies come from and where
	// their reports and manifests go back.
	Sites map[string]Site `yaml:"sites"`
	// Reports configures report documents (CDA).
	Reports Reports `yaml:"reports"`
	// Worklist configures the reading worklist: assignment, locks, SLAs.
	Worklist Worklist `yaml:"worklist"`
	// Requests configures telemedicine requests and consent.
	Requests Requests `yaml:"requests"`
	// Web configures the web application.
	Web Web `yaml:"web"`
	// Log configures structured logging.
	Log Log `yaml:"log"`
}

// Listen holds listener addresses.
type Listen struct {
	DICOM string `yaml:"dicom"`
	HTTP  string `yaml:"http"`
}

// Limits bounds resources a peer can consume.
type Limits struct {
	MaxPDULength    uint32   `yaml:"max_pdu_length"`
	MaxValueLength  uint32   `yaml:"max_value_length"`
	MaxDatasetSize  ByteSize `yaml:"max_dataset_size"`
	MaxAssociations int      `yaml:"max_associations"`
	ARTIMTimeout    Duration `yaml:"artim_timeout"`
	IdleTimeout     Duration `yaml:"idle_timeout"`
	// MaxFindResults bounds the matches of one C-FIND; beyond it the query
	// ends with A700 (out of resources). 0 means unlimited.
	MaxFindResults int `yaml:"max_find_results"`
	// MoveAssociations bounds the associations opened at once, across all
	// C-MOVEs, to send sub-operations to move destinations; beyond it a
	// move waits for a slot.
	MoveAssociations int `yaml:"move_associations"`
}

// DICOM holds the association acceptance policy.
type DICOM struct {
	// TransferSyntaxes lists accepted transfer syntaxes in preference order.
	// Empty means the built-in list (uncompressed first, then every common
	// compressed syntax, stored exactly as received).
	TransferSyntaxes []string `yaml:"transfer_syntaxes"`
	// AcceptAnyCalledAE accepts associations whatever the called AE title.
	AcceptAnyCalledAE bool `yaml:"accept_any_called_ae"`
	// AllowedCallers, when non-empty, is the exhaustive list of calling AEs
	// (with the hosts they may come from) allowed to associate.
	AllowedCallers []Caller `yaml:"allowed_callers"`
	// QueryRetrieveCallers are the calling AEs (with their hosts) allowed to
	// query and retrieve (C-FIND, C-MOVE, C-GET): images leave Relais only
	// for these, and for loopback peers when QueryRetrieveLoopback is on.
	QueryRetrieveCallers []Caller `yaml:"query_retrieve_callers"`
	// QueryRetrieveLoopback lets any AE on this machine query and retrieve
	// (default true: a first run works with local viewers).
	QueryRetrieveLoopback bool `yaml:"query_retrieve_loopback"`
	// DuplicatePolicy says what happens when a SOP Instance UID arrives twice:
	// "keep-first" (default), "replace" or "reject".
	DuplicatePolicy string `yaml:"duplicate_policy"`
}

// Caller is an allowed calling AE.
type Caller struct {
	AE string `yaml:"ae"`
	// Hosts are IP addresses, CIDR ranges or host names the AE may call
	// from. Empty means any host.
	Hosts []string `yaml:"hosts"`
}

// RemoteAE is a DICOM peer known by name.
type RemoteAE struct {
	Name string `yaml:"name"`
	AE   string `yaml:"ae"`
	Host string `yaml:"host"`
	Port int    `yaml:"port"`
	// Associations is the number of parallel associations used for the
	// C-STORE sub-operations of a C-MOVE to this AE; 0 means
	// DefaultMoveAssociations.
	Associations int `yaml:"associations"`
}

// DefaultMoveAssociations is the default RemoteAE.Associations.
const DefaultMoveAssociations = 4

// MoveAssociations returns Associations, or its default.
func (r RemoteAE) MoveAssociations() int {
	if r.Associations <= 0 {
		return DefaultMoveAssociations
	}
	return r.Associations
}

// Storage selects backends.
type Storage struct {
	Blobs Blobs `yaml:"blobs"`
}

// Blobs selects the blob backend.
type Blobs struct {
	Backend string `yaml:"backend"` // "fs" (default) or "s3"
	FS      FSBlob `yaml:"fs"`
	S3      S3Blob `yaml:"s3"`
}

// FSBlob configures the filesystem blob store.
type FSBlob struct {
	Dir string `yaml:"dir"` // default DataDir/blobs
}

// S3Blob configures the S3 blob store. Secrets never sit in the file: they
// come from the environment variables or files named here.
type S3Blob struct {
	Endpoint      string `yaml:"endpoint"`
	Bucket        string `yaml:"bucket"`
	Region        string `yaml:"region"`
	Secure        bool   `yaml:"secure"`
	Prefix        string `yaml:"prefix"`
	AccessKeyEnv  string `yaml:"access_key_env"`
	SecretKeyEnv  string `yaml:"secret_key_env"`
	AccessKeyFile string `yaml:"access_key_file"`
	SecretKeyFile string `yaml:"secret_key_file"`
}

// HTTP configures the HTTP services.
type HTTP struct {
	// Auth is "token" (default: every route that returns or takes patient
	// data requires "Authorization: Bearer TOKEN", tokens made by `relais
	// token create`) or "none" (no authentication at all: only for a
	// closed test network; a warning is logged at every start).
	Auth string `yaml:"auth"`
	// PublicURL is the base URL clients reach Relais at, e.g.
	// "https://relais.example.org" behind a reverse proxy; it prefixes the
	// Retrieve URLs and Bulk Data URIs Relais returns. Empty: taken from
	// each request's Host (and X-Forwarded-Proto).
	PublicURL string `yaml:"public_url"`
	// CORS lets browser applications served from other origins (a viewer
	// such as OHIF) call the HTTP services.
	CORS CORS `yaml:"cors"`
	// MaxSTOWSize bounds the body of one STOW-RS request (default 4GiB).
	MaxSTOWSize ByteSize `yaml:"max_stow_size"`
}

// CORS is the cross-origin policy of the HTTP services.
type CORS struct {
	// AllowedOrigins lists the origins allowed ("https://viewer.example.org");
	// "*" allows any origin (then credentials are never allowed). Empty:
	// no cross-origin access.
	AllowedOrigins []string `yaml:"allowed_origins"`
	// MaxAge is how long browsers may cache a preflight answer (default 10m).
	MaxAge Duration `yaml:"max_age"`
}

// HTTP authentication modes.
const (
	AuthToken = "token"
	AuthNone  = "none"
)

// Destination is a peer routes forward to: a DICOM AE (C-STORE) or a
// DICOMweb service (STOW-RS).
type Destination struct {
	DICOM    *DICOMDestination    `yaml:"dicom"`
	DICOMweb *DICOMwebDestination `yaml:"dicomweb"`
	// Associations is the number of parallel associations (or HTTP
	// requests) used to deliver to this destination (default 2).
	Associations int `yaml:"associations"`
	// FailoverAfter is the number of failed attempts of a task before it
	// moves to the route's next failover destination (default 5).
	FailoverAfter int `yaml:"failover_after"`
}

// DICOMDestination is a C-STORE SCP.
type DICOMDestination struct {
	AE   string `yaml:"ae"`
	Host string `yaml:"host"`
	Port int    `yaml:"port"`
	// CallingAE is our AE title towards it (default: ae_title).
	CallingAE string `yaml:"calling_ae"`
}

// DICOMwebDestination is a STOW-RS service. Its token (sent as a Bearer
// token) comes from a file or an environment variable, never from here.
type DICOMwebDestination struct {
	URL       string `yaml:"url"` // base URL, e.g. https://site-b.example/dicom-web
	TokenFile string `yaml:"token_file"`
	TokenEnv  string `yaml:"token_env"`
}

// Calendar is an iCalendar on-call rota: a file path or an http(s) URL.
type Calendar struct {
	ICS string `yaml:"ics"`
	// Refresh is how often a URL is fetched again (default 15m; files are
	// re-read when they change).
	Refresh Duration `yaml:"refresh"`
}

// Holidays configures public holidays.
type Holidays struct {
	// Country: "FR" (default: the 11 French public holidays) or "none".
	Country string `yaml:"country"`
	// AlsaceMoselle adds Good Friday and 26 December.
	AlsaceMoselle bool `yaml:"alsace_moselle"`
	// Extra and Except are dates (YYYY-MM-DD) added to or removed from the
	// list.
	Extra  []string `yaml:"extra"`
	Except []string `yaml:"except"`
	// Timezone of calendars and time windows (default Europe/Paris).
	Timezone string `yaml:"timezone"`
}

// Route is a routing rule.
type Route struct {
	Name string `yaml:"name"`
	// When is an expression over the instance's attributes (by keyword),
	// its arrival context and time; empty matches every instance.
	When string `yaml:"when"`
	// Priority: STAT, URGENT or ROUTINE (default).
	Priority string `yaml:"priority"`
	// Mode: "immediate" (each instance as soon as it is durable) or
	// "stable" (the study once no instance arrived for StableAfter;
	// default).
	Mode string `yaml:"mode"`
	// StableAfter defaults to 60s (10s for STAT).
	StableAfter Duration `yaml:"stable_after"`
	// Late says what a stable route does with instances arriving after it
	// fired: "send" (default: send them too) or "resend" (the whole study
	// again once stable).
	Late     string   `yaml:"late"`
	Forward  []string `yaml:"forward"`
	Failover []string `yaml:"failover"`
	// Continue lets later routes apply too.
	Continue bool `yaml:"continue"`
	// Coerce modifies attributes of the forwarded copies (never the
	// stored instance); see package coerce.
	Coerce *coerce.Spec `yaml:"coerce"`
	// Priors fetches the patient's prior studies from a remote AE
	// (C-FIND + C-MOVE to us) and forwards them with the study.
	Priors *Priors `yaml:"priors"`
	// Webhook is called (POST, JSON) when the route fires.
	Webhook string `yaml:"webhook"`
	// Ready emits a "study ready for reading" event for the worklist.
	Ready bool `yaml:"ready"`
	// Reader names the user (a professional's token user) who reads the
	// studies the route makes ready; Pool names a calendar (an on-call rota)
	// whose readers on call at that moment share them. Both need ready.
	Reader string `yaml:"reader"`
	Pool   string `yaml:"pool"`
	// KOS builds the study's Key Object Selection manifest (IHE XDS-I.b,
	// CI-SIS) when the route fires in stable mode, stores it in the study
	// and forwards it to the route's destinations with the study.
	KOS bool `yaml:"kos"`
}

// Priors configures fetching prior studies.
type Priors struct {
	From string `yaml:"from"` // a remote_aes name
	// Max is the number of most recent prior studies fetched (default 3).
	Max int `yaml:"max"`
	// Within bounds how old a prior may be (default 5y: "1825d" style is
	// not Go syntax: use hours, e.g. 43800h).
	Within Duration `yaml:"within"`
}

// Routing tunes delivery.
type Routing struct {
	// RetryInitial and RetryMax bound the exponential backoff between
	// attempts (defaults 2s and 10m; jitter ±20%).
	RetryInitial Duration `yaml:"retry_initial"`
	RetryMax     Duration `yaml:"retry_max"`
	// MaxAttempts is the attempts of a task on its last destination before
	// it is dead-lettered (default 20).
	MaxAttempts int `yaml:"max_attempts"`
	// DeadLetterWebhook is called when a task is dead-lettered.
	DeadLetterWebhook string `yaml:"dead_letter_webhook"`
	// StrokePatterns are the regular expressions stroke() looks for in
	// StudyDescription, ProtocolName, RequestedProcedureDescription and
	// the Procedure Code Sequence's code meanings (default: AVC, STROKE,
	// THROMB..., ALERTE THROMBOLYSE, UNV, case-insensitive).
	StrokePatterns []string `yaml:"stroke_patterns"`
	// MinFreeSpace: below it on the data disk, new associations are refused
	// and C-STOREs answered A700 (default 1GiB).
	MinFreeSpace ByteSize `yaml:"min_free_space"`
}

// Route priorities and modes.
const (
	PriorityStat    = "STAT"
	PriorityUrgent  = "URGENT"
	PriorityRoutine = "ROUTINE"
	ModeImmediate   = "immediate"
	ModeStable      = "stable"
	LateSend        = "send"
	LateResend      = "resend"
)

// Log configures logging.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text or json
}

// Duplicate policies.
const (
	DuplicateKeepFirst = "keep-first"
	DuplicateReplace   = "replace"
	DuplicateReject    = "reject"
)

// Default returns the embedded defaults: the configuration of a first run.
func Default() *Config {
	return &Config{
		AETitle: "RELAIS",
		DataDir: "./relais-data",
		Listen:  Listen{DICOM: ":11112", HTTP: ":8080"},
		Limits: Limits{
			MaxPDULength:     1 << 20,
			MaxValueLength:   0xFFFFFFFE,
			MaxAssociations:  64,
			ARTIMTimeout:     Duration(30 * time.Second),
			IdleTimeout:      Duration(5 * time.Minute),
			MaxFindResults:   10000,
			MoveAssociations: 16,
		},
		DICOM:    DICOM{DuplicatePolicy: DuplicateKeepFirst, QueryRetrieveLoopback: true},
		Storage:  Storage{Blobs: Blobs{Backend: "fs", S3: S3Blob{Region: "us-east-1", AccessKeyEnv: "RELAIS_S3_ACCESS_KEY", SecretKeyEnv: "RELAIS_S3_SECRET_KEY"}}},
		Log:      Log{Level: "info", Format: "text"},
		HTTP:     HTTP{Auth: AuthToken, MaxSTOWSize: 4 << 30, CORS: CORS{MaxAge: Duration(10 * time.Minute)}},
		Holidays: Holidays{Country: "FR", Timezone: "Europe/Paris"},
		Routing: Routing{RetryInitial: Duration(2 * time.Second), RetryMax: Duration(10 * time.Minute), MaxAttempts: 20,
			MinFreeSpace: 1 << 30},
	}
}

// Load reads a YAML file over the defaults and validates the result.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(b)
}

// Parse decodes YAML over the defaults and validates the result. Unknown
// keys are errors: a typo must not silently fall back to a default.
func Parse(b []byte) (*Config, error) {
	c := Default()
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		if key := keyAtLine(b, msg); key != "" {
			return nil, &KeyError{Key: key, Msg: msg}
		}
		return nil, fmt.Errorf("config: %s", msg)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

var lineRE = regexp.MustCompile(`line (\d+)`)

// keyAtLine finds the dotted key path of the first scalar value on the line
// a YAML error names, so that errors raised by custom unmarshalers (which do
// not know their key) still name it.
func keyAtLine(src []byte, msg string) string {
	m := lineRE.FindStringSubmatch(msg)
	if m == nil {
		return ""
	}
	line, _ := strconv.Atoi(m[1])
	var root yaml.Node
	if yaml.Unmarshal(src, &root) != nil {
		return ""
	}
	var walk func(n *yaml.Node, path string) string
	walk = func(n *yaml.Node, path string) string {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				if k := walk(c, path); k != "" {
					return k
				}
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := k.Value
				if path != "" {
					p = path + "." + k.Value
				}
				if v.Kind == yaml.ScalarNode && v.Line == line {
					return p
				}
				if r := walk(v, p); r != "" {
					return r
				}
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				if r := walk(c, fmt.Sprintf("%s[%d]", path, i)); r != "" {
					return r
				}
			}
		}
		return ""
	}
	return walk(&root, "")
}

// KeyError names the configuration key that is wrong.
type KeyError struct {
	Key string
	Msg string
}

func (e *KeyError) Error() string { return fmt.Sprintf("config: %s: %s", e.Key, e.Msg) }

// Validate checks every key and returns the first error, naming its key.
func (c *Config) Validate() error {
	bad := func(key, format string, a ...any) error {
		return &KeyError{Key: key, Msg: fmt.Sprintf(format, a...)}
	}
	if err := ValidAETitle(c.AETitle); err != nil {
		return bad("ae_title", "%v", err)
	}
	if c.DataDir == "" {
		return bad("data_dir", "must not be empty")
	}
	if err := validAddr(c.Listen.DICOM); err != nil {
		return bad("listen.dicom", "%v", err)
	}
	if c.Listen.HTTP != "" {
		if err := validAddr(c.Listen.HTTP); err != nil {
			return bad("listen.http", "%v", err)
		}
	}
	if c.Limits.MaxPDULength < 4096 || c.Limits.MaxPDULength > 64<<20 {
		return bad("limits.max_pdu_length", "%d outside 4096..67108864", c.Limits.MaxPDULength)
	}
	if c.Limits.MaxValueLength < 1024 {
		return bad("limits.max_value_length", "%d is below 1024", c.Limits.MaxValueLength)
	}
	if c.Limits.MaxAssociations < 1 {
		return bad("limits.max_associations", "must be at least 1")
	}
	if c.Limits.ARTIMTimeout <= 0 {
		return bad("limits.artim_timeout", "must be positive")
	}
	if c.Limits.IdleTimeout <= 0 {
		return bad("limits.idle_timeout", "must be positive")
	}
	if c.Limits.MoveAssociations < 1 || c.Limits.MoveAssociations > 1024 {
		return bad("limits.move_associations", "%d outside 1..1024", c.Limits.MoveAssociations)
	}
	if c.Limits.MaxFindResults < 0 {
		return bad("limits.max_find_results", "must not be negative (0 = unlimited)")
	}
	if c.Limits.MaxDatasetSize < 0 {
		return bad("limits.max_dataset_size", "must not be negative")
	}
	for i, ts := range c.DICOM.TransferSyntaxes {
		if !validUID(ts) {
			return bad(fmt.Sprintf("dicom.transfer_syntaxes[%d]", i), "%q is not a UID", ts)
		}
	}
	switch c.DICOM.DuplicatePolicy {
	case DuplicateKeepFirst, DuplicateReplace, DuplicateReject:
	default:
		return bad("dicom.duplicate_policy", "%q is not one of keep-first, replace, reject", c.DICOM.DuplicatePolicy)
	}
	for i, cl := range c.DICOM.AllowedCallers {
		key := fmt.Sprintf("dicom.allowed_callers[%d]", i)
		if err := ValidAETitle(cl.AE); err != nil {
			return bad(key+".ae", "%v", err)
		}
		for j, h := range cl.Hosts {
			if strings.TrimSpace(h) == "" {
				return bad(fmt.Sprintf("%s.hosts[%d]", key, j), "empty host")
			}
			if strings.Contains(h, "/") {
				if _, _, err := net.ParseCIDR(h); err != nil {
					return bad(fmt.Sprintf("%s.hosts[%d]", key, j), "%q is not a CIDR range", h)
				}
			}
		}
	}
	for i, cl := range c.DICOM.QueryRetrieveCallers {
		key := fmt.Sprintf("dicom.query_retrieve_callers[%d]", i)
		if err := ValidAETitle(cl.AE); err != nil {
			return bad(key+".ae", "%v", err)
		}
		for j, h := range cl.Hosts {
			if strings.Contains(h, "/") {
				if _, _, err := net.ParseCIDR(h); err != nil {
					return bad(fmt.Sprintf("%s.hosts[%d]", key, j), "%q is not a CIDR range", h)
				}
			}
		}
	}
	seen := map[string]bool{}
	for i, r := range c.RemoteAEs {
		key := fmt.Sprintf("remote_aes[%d]", i)
		if r.Name == "" {
			return bad(key+".name", "must not be empty")
		}
		if seen[r.Name] {
			return bad(key+".name", "%q is defined twice", r.Name)
		}
		seen[r.Name] = true
		if err := ValidAETitle(r.AE); err != nil {
			return bad(key+".ae", "%v", err)
		}
		if r.Host == "" {
			return bad(key+".host", "must not be empty")
		}
		if r.Port < 1 || r.Port > 65535 {
			return bad(key+".port", "%d is not a TCP port", r.Port)
		}
		if r.Associations < 0 || r.Associations > 32 {
			return bad(key+".associations", "%d outside 0..32", r.Associations)
		}
	}
	switch c.Storage.Blobs.Backend {
	case "fs":
	case "s3":
		s := c.Storage.Blobs.S3
		if s.Endpoint == "" {
			return bad("storage.blobs.s3.endpoint", "must be set when backend is s3")
		}
		if s.Bucket == "" {
			return bad("storage.blobs.s3.bucket", "must be set when backend is s3")
		}
	default:
		return bad("storage.blobs.backend", "%q is not one of fs, s3", c.Storage.Blobs.Backend)
	}
	switch c.HTTP.Auth {
	case AuthToken, AuthNone:
	default:
		return bad("http.auth", "%q is not one of token, none", c.HTTP.Auth)
	}
	if c.HTTP.PublicURL != "" {
		u, err := url.Parse(c.HTTP.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return bad("http.public_url", "%q is not an absolute http(s) URL without query", c.HTTP.PublicURL)
		}
	}
	for i, o := range c.HTTP.CORS.AllowedOrigins {
		if o == "*" {
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return bad(fmt.Sprintf("http.cors.allowed_origins[%d]", i), "%q is not an origin like https://viewer.example.org", o)
		}
	}
	if c.HTTP.CORS.MaxAge < 0 {
		return bad("http.cors.max_age", "must not be negative")
	}
	if c.HTTP.MaxSTOWSize <= 0 {
		return bad("http.max_stow_size", "must be positive")
	}
	if err := c.ValidateReporting(); err != nil {
		return err
	}
	if err := c.validateWorklist(); err != nil {
		return err
	}
	if err := c.validateRequests(); err != nil {
		return err
	}
	if err := c.validateWeb(); err != nil {
		return err
	}
	if err := c.validateRouting(); err != nil {
		return err
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return bad("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		return bad("log.format", "%q is not one of text, json", c.Log.Format)
	}
	return nil
}

// S3Credentials resolves the S3 keys from files or environment variables.
func (s S3Blob) S3Credentials() (access, secret string, err error) {
	read := func(file, env, what string) (string, error) {
		if file != "" {
			b, err := os.ReadFile(file)
			if err != nil {
				return "", fmt.Errorf("config: storage.blobs.s3.%s_file: %w", what, err)
			}
			return strings.TrimSpace(string(b)), nil
		}
		if env != "" {
			if v := os.Getenv(env); v != "" {
				return v, nil
			}
		}
		return "", &KeyError{Key: "storage.blobs.s3." + what + "_env", Msg: fmt.Sprintf("no %s: set $%s or %s_file", what, env, what)}
	}
	if access, err = read(s.AccessKeyFile, s.AccessKeyEnv, "access_key"); err != nil {
		return "", "", err
	}
	if secret, err = read(s.SecretKeyFile, s.SecretKeyEnv, "secret_key"); err != nil {
		return "", "", err
	}
	return access, secret, nil
}

// ValidAETitle checks PS3.5 AE VR rules: 1 to 16 characters of the default
// repertoire, no backslash or control characters, not all spaces.
func ValidAETitle(ae string) error {
	if strings.TrimSpace(ae) == "" {
		return errors.New("AE title must not be empty")
	}
	if len(ae) > 16 {
		return fmt.Errorf("AE title %q is longer than 16 characters", ae)
	}
	for _, r := range ae {
		if r < 0x20 || r > 0x7e || r == '\\' {
			return fmt.Errorf("AE title %q has a forbidden character %q", ae, r)
		}
	}
	return nil
}

func validAddr(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %w", a, err)
	}
	_ = host
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("%q has no valid port", a)
	}
	return nil
}

func validUID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if (r < '0' || r > '9') && r != '.' {
			return false
		}
	}
	return true
}

// Duration is a time.Duration written as "30s" in YAML.
type Duration time.Duration

// UnmarshalYAML parses Go duration syntax.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration like 30s or 5m", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes Go duration syntax.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// ByteSize is a size written as 512MiB, 2GB or a plain number of bytes.
type ByteSize int64

// UnmarshalYAML parses sizes with optional binary or decimal units.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*b = ByteSize(v)
	return nil
}

// ParseByteSize parses "512MiB", "2GB", "1024".
func ParseByteSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mul    int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1}}
	mul := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			mul = u.mul
			s = strings.TrimSpace(strings.TrimSuffix(s, u.suffix))
			break
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%q is not a size like 512MiB", s)
	}
	return v * mul, nil
}

// validateRouting checks destinations, calendars and the structure of
// routes. Expressions, calendars' contents and coercions are checked by
// the routing engine when it compiles the rules (at load and at reload).
func (c *Config) validateRouting() error {
	bad := func(key, format string, a ...any) error {
		return &KeyError{Key: key, Msg: fmt.Sprintf(format, a...)}
	}
	for name, d := range c.Destinations {
		key := "destinations." + name
		if !validName(name) {
			return bad(key, "a destination name is letters, digits, '-', '_' and '.'")
		}
		switch {
		case d.DICOM != nil && d.DICOMweb != nil:
			return bad(key, "set dicom or dicomweb, not both")
		case d.DICOM != nil:
			if err := ValidAETitle(d.DICOM.AE); err != nil {
				return bad(key+".dicom.ae", "%v", err)
			}
			if d.DICOM.Host == "" {
				return bad(key+".dicom.host", "must not be empty")
			}
			if d.DICOM.Port < 1 || d.DICOM.Port > 65535 {
				return bad(key+".dicom.port", "%d is not a TCP port", d.DICOM.Port)
			}
			if d.DICOM.CallingAE != "" {
				if err := ValidAETitle(d.DICOM.CallingAE); err != nil {
					return bad(key+".dicom.calling_ae", "%v", err)
				}
			}
		case d.DICOMweb != nil:
			u, err := url.Parse(d.DICOMweb.URL)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return bad(key+".dicomweb.url", "%q is not an http(s) URL", d.DICOMweb.URL)
			}
		default:
			return bad(key, "needs dicom: {ae, host, port} or dicomweb: {url}")
		}
		if d.Associations < 0 || d.Associations > 32 {
			return bad(key+".associations", "%d outside 0..32", d.Associations)
		}
		if d.FailoverAfter < 0 {
			return bad(key+".failover_after", "must not be negative")
		}
	}
	for name, cal := range c.Calendars {
		if !validName(name) {
			return bad("calendars."+name, "a calendar name is letters, digits, '-', '_' and '.'")
		}
		if cal.ICS == "" {
			return bad("calendars."+name+".ics", "must name an .ics file or URL")
		}
	}
	switch c.Holidays.Country {
	case "FR", "none", "":
	default:
		return bad("holidays.country", "%q is not FR or none", c.Holidays.Country)
	}
	if c.Holidays.Timezone != "" {
		if _, err := time.LoadLocation(c.Holidays.Timezone); err != nil {
			return bad("holidays.timezone", "%q is not a time zone (e.g. Europe/Paris)", c.Holidays.Timezone)
		}
	}
	for i, d := range append(append([]string{}, c.Holidays.Extra...), c.Holidays.Except...) {
		if _, err := time.Parse("2006-01-02", d); err != nil {
			return bad("holidays", "date %d %q is not YYYY-MM-DD", i, d)
		}
	}
	names := map[string]bool{}
	for i, r := range c.Routes {
		key := fmt.Sprintf("routes[%d]", i)
		if r.Name == "" {
			return bad(key+".name", "every route needs a name")
		}
		key = fmt.Sprintf("routes[%d] (%s)", i, r.Name)
		if names[r.Name] {
			return bad(key+".name", "%q is defined twice", r.Name)
		}
		names[r.Name] = true
		switch r.Priority {
		case "", PriorityStat, PriorityUrgent, PriorityRoutine:
		default:
			return bad(key+".priority", "%q is not STAT, URGENT or ROUTINE", r.Priority)
		}
		switch r.Mode {
		case "", ModeImmediate, ModeStable:
		default:
			return bad(key+".mode", "%q is not immediate or stable", r.Mode)
		}
		switch r.Late {
		case "", LateSend, LateResend:
		default:
			return bad(key+".late", "%q is not send or resend", r.Late)
		}
		if r.StableAfter < 0 {
			return bad(key+".stable_after", "must not be negative")
		}
		for j, d := range append(append([]string{}, r.Forward...), r.Failover...) {
			if _, ok := c.Destinations[d]; !ok {
				return bad(key, "unknown destination %q (entry %d of forward/failover); known: %s", d, j, strings.Join(c.destinationNames(), ", "))
			}
		}
		if len(r.Forward) == 0 && len(r.Failover) > 0 {
			return bad(key+".failover", "a failover list needs a forward list")
		}
		if r.Priors != nil {
			found := false
			for _, ra := range c.RemoteAEs {
				found = found || ra.Name == r.Priors.From
			}
			if !found {
				return bad(key+".priors.from", "unknown remote AE %q (see remote_aes)", r.Priors.From)
			}
		}
		if r.Coerce != nil {
			if err := r.Coerce.Validate(); err != nil {
				return bad(key+".coerce", "%v", err)
			}
		}
		if r.Webhook != "" {
			if u, err := url.Parse(r.Webhook); err != nil || (u.Scheme != "http" && u.Scheme != "https") {
				return bad(key+".webhook", "%q is not an http(s) URL", r.Webhook)
			}
		}
	}
	if c.Routing.RetryInitial <= 0 || c.Routing.RetryMax < c.Routing.RetryInitial {
		return bad("routing.retry_initial", "must be positive and at most routing.retry_max")
	}
	if c.Routing.MaxAttempts < 1 {
		return bad("routing.max_attempts", "must be at least 1")
	}
	for i, p := range c.Routing.StrokePatterns {
		if _, err := regexp.Compile(p); err != nil {
			return bad(fmt.Sprintf("routing.stroke_patterns[%d]", i), "%q is not a regular expression: %v", p, err)
		}
	}
	if c.Routing.MinFreeSpace < 0 {
		return bad("routing.min_free_space", "must not be negative")
	}
	return nil
}

func (c *Config) destinationNames() []string {
	var out []string
	for n := range c.Destinations {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}
