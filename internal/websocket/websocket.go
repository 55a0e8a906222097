// Package websocket is the server side of RFC 6455 that Relais needs to
// push events (UPS-RS event channels): the opening handshake over an
// http.Handler, unfragmented text messages to the client, and a reader
// that answers pings and the close handshake and drops what clients send.
// Frames from the client are bounded and must be masked, as the RFC says;
// anything else closes the connection with the matching status.
package websocket

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// guid is the RFC 6455 key suffix.
const guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// Opcodes.
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
)

// Close status codes (RFC 6455 7.4.1).
const (
	CloseNormal        = 1000
	CloseGoingAway     = 1001
	CloseProtocolError = 1002
	CloseTooBig        = 1009
)

// MaxFrame bounds a frame from the client: the event channel expects
// nothing but control frames, so anything large is an abuse.
const MaxFrame = 64 << 10

// ErrClosed is returned by WriteText once the connection is closed.
var ErrClosed = errors.New("websocket: closed")

// Conn is an established WebSocket connection.
type Conn struct {
	c      net.Conn
	br     *bufio.Reader
	wmu    sync.Mutex
	closed bool
	done   chan struct{}
	once   sync.Once
}

// Accept returns the Sec-WebSocket-Accept value of a key.
func Accept(key string) string {
	h := sha1.Sum([]byte(key + guid))
	return base64.StdEncoding.EncodeToString(h[:])
}

func headerHas(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// HandshakeError is a refused opening handshake: the HTTP status it was
// answered with and why.
type HandshakeError struct {
	Status int
	Reason string
}

func (e *HandshakeError) Error() string { return "websocket: " + e.Reason }

// Upgrade performs the server's opening handshake. On error it has
// answered the request (400 or 426) and returns a *HandshakeError.
func Upgrade(w http.ResponseWriter, r *http.Request) (*Conn, error) {
	fail := func(status int, reason string) (*Conn, error) {
		if status == http.StatusUpgradeRequired {
			w.Header().Set("Sec-WebSocket-Version", "13")
		}
		http.Error(w, "websocket: "+reason, status)
		return nil, &HandshakeError{status, reason}
	}
	if r.Method != http.MethodGet {
		return fail(http.StatusMethodNotAllowed, "the opening handshake is a GET")
	}
	if !headerHas(r.Header, "Connection", "upgrade") || !headerHas(r.Header, "Upgrade", "websocket") {
		return fail(http.StatusUpgradeRequired, "not a WebSocket upgrade request (Connection: Upgrade, Upgrade: websocket)")
	}
	if r.Header.Get("Sec-WebSocket-Version") != "13" {
		return fail(http.StatusUpgradeRequired, "unsupported Sec-WebSocket-Version (13 is)")
	}
	key := r.Header.Get("Sec-WebSocket-Key")
	if k, err := base64.StdEncoding.DecodeString(key); err != nil || len(k) != 16 {
		return fail(http.StatusBadRequest, "Sec-WebSocket-Key is not 16 bytes in base64")
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		return fail(http.StatusInternalServerError, "the connection cannot be taken over")
	}
	c, rw, err := hj.Hijack()
	if err != nil {
		return nil, fmt.Errorf("websocket: hijack: %w", err)
	}
	c.SetDeadline(time.Time{})
	resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + Accept(key) + "\r\n\r\n"
	if _, err := rw.WriteString(resp); err == nil {
		err = rw.Flush()
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("websocket: handshake: %w", err)
	}
	conn := &Conn{c: c, br: rw.Reader, done: make(chan struct{})}
	go conn.readLoop()
	return conn, nil
}

// Done is closed when the connection is closed (by either side).
func (c *Conn) Done() <-chan struct{} { return c.done }

// RemoteAddr is the peer's address.
func (c *Conn) RemoteAddr() net.Addr { return c.c.RemoteAddr() }

// WriteText sends one text message, waiting at most timeout.
func (c *Conn) WriteText(msg []byte, timeout time.Duration) error {
	return c.write(opText, msg, timeout)
}

func (c *Conn) write(op byte, payload []byte, timeout time.Duration) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closed {
		return ErrClosed
	}
	if timeout > 0 {
		c.c.SetWriteDeadline(time.Now().Add(timeout))
	}
	_, err := c.c.Write(AppendFrame(nil, op, payload))
	if err != nil {
		c.closeLocked()
	}
	return err
}

// AppendFrame appends an unmasked final frame (server to client).
func AppendFrame(b []byte, op byte, payload []byte) []byte {
	b = append(b, 0x80|op)
	switch n := len(payload); {
	case n < 126:
		b = append(b, byte(n))
	case n <= 0xFFFF:
		b = append(b, 126, byte(n>>8), byte(n))
	default:
		b = append(b, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return append(b, payload...)
}

// Close sends a close frame with code and closes the connection.
func (c *Conn) Close(code int) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closed {
		return nil
	}
	c.c.SetWriteDeadline(time.Now().Add(time.Second))
	c.c.Write(AppendFrame(nil, opClose, []byte{byte(code >> 8), byte(code)}))
	c.closeLocked()
	return nil
}

func (c *Conn) closeLocked() {
	c.closed = true
	c.c.Close()
	c.once.Do(func() { close(c.done) })
}

// Frame is one frame read from a client.
type Frame struct {
	Fin     bool
	Op      byte
	Payload []byte
}

// ReadFrame reads one client frame: masked, at most max bytes of payload,
// control frames short and final (RFC 6455 5.5). The payload is unmasked.
func ReadFrame(r io.Reader, max int) (Frame, error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return Frame{}, err
	}
	f := Frame{Fin: h[0]&0x80 != 0, Op: h[0] & 0x0F}
	if h[0]&0x70 != 0 {
		return f, &ProtocolError{CloseProtocolError, "reserved bits set (no extension was negotiated)"}
	}
	switch f.Op {
	case opContinuation, opText, opBinary, opClose, opPing, opPong:
	default:
		return f, &ProtocolError{CloseProtocolError, fmt.Sprintf("unknown opcode %#x", f.Op)}
	}
	if h[1]&0x80 == 0 {
		return f, &ProtocolError{CloseProtocolError, "client frame not masked"}
	}
	n := uint64(h[1] & 0x7F)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return f, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return f, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if f.Op >= opClose && (n > 125 || !f.Fin) {
		return f, &ProtocolError{CloseProtocolError, "control frame longer than 125 bytes or fragmented"}
	}
	if n > uint64(max) {
		return f, &ProtocolError{CloseTooBig, fmt.Sprintf("frame of %d bytes (at most %d)", n, max)}
	}
	var mask [4]byte
	if _, err := io.ReadFull(r, mask[:]); err != nil {
		return f, err
	}
	f.Payload = make([]byte, n)
	if _, err := io.ReadFull(r, f.Payload); err != nil {
		return f, err
	}
	for i := range f.Payload {
		f.Payload[i] ^= mask[i%4]
	}
	return f, nil
}

// ProtocolError is a client frame that breaks RFC 6455: the connection is
// closed with Code.
type ProtocolError struct {
	Code   int
	Reason string
}

func (e *ProtocolError) Error() string { return "websocket: " + e.Reason }

// readLoop answers pings and the close handshake; data frames are read
// and dropped (the event channel is one way).
func (c *Conn) readLoop() {
	defer func() {
		c.wmu.Lock()
		c.closeLocked()
		c.wmu.Unlock()
	}()
	for {
		f, err := ReadFrame(c.br, MaxFrame)
		if err != nil {
			var pe *ProtocolError
			if errors.As(err, &pe) {
				c.Close(pe.Code)
			}
			return
		}
		switch f.Op {
		case opPing:
			if c.write(opPong, f.Payload, 5*time.Second) != nil {
				return
			}
		case opClose:
			code := CloseNormal
			if len(f.Payload) >= 2 {
				code = int(binary.BigEndian.Uint16(f.Payload))
			}
			c.Close(code)
			return
		}
	}
}
