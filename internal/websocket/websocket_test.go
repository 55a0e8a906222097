package websocket

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// RFC 6455 section 1.3's example.
func TestAccept(t *testing.T) {
	if got := Accept("dGhlIHNhbXBsZSBub25jZQ=="); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("Accept = %s", got)
	}
}

func masked(op byte, payload []byte) []byte {
	b := []byte{0x80 | op}
	n := len(payload)
	switch {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n <= 0xFFFF:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	mask := []byte{1, 2, 3, 4}
	b = append(b, mask...)
	for i, c := range payload {
		b = append(b, c^mask[i%4])
	}
	return b
}

func TestReadFrame(t *testing.T) {
	long := bytes.Repeat([]byte("x"), 300)
	for _, tc := range []struct {
		name string
		in   []byte
		op   byte
		want []byte
		code int
	}{
		{"text", masked(opText, []byte("hello")), opText, []byte("hello"), 0},
		{"16-bit length", masked(opBinary, long), opBinary, long, 0},
		{"ping", masked(opPing, []byte("p")), opPing, []byte("p"), 0},
		{"unmasked", AppendFrame(nil, opText, []byte("x")), 0, nil, CloseProtocolError},
		{"reserved bits", append([]byte{0xF1}, masked(opText, nil)[1:]...), 0, nil, CloseProtocolError},
		{"unknown opcode", masked(0x3, nil), 0, nil, CloseProtocolError},
		{"long control frame", masked(opPing, long), 0, nil, CloseProtocolError},
		{"too big", masked(opText, bytes.Repeat([]byte("y"), MaxFrame+1)), 0, nil, CloseTooBig},
		{"lying 64-bit length", []byte{0x81, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}, 0, nil, CloseTooBig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := ReadFrame(bytes.NewReader(tc.in), MaxFrame)
			if tc.code != 0 {
				var pe *ProtocolError
				if !errors.As(err, &pe) || pe.Code != tc.code {
					t.Fatalf("err %v, want close code %d", err, tc.code)
				}
				return
			}
			if err != nil || f.Op != tc.op || !bytes.Equal(f.Payload, tc.want) {
				t.Fatalf("frame %+v, %v", f, err)
			}
		})
	}
	if _, err := ReadFrame(bytes.NewReader(masked(opText, []byte("hello"))[:5]), MaxFrame); err == nil {
		t.Fatal("a truncated frame was read")
	}
}

func TestHandshakeAndEvents(t *testing.T) {
	got := make(chan *Conn, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := Upgrade(w, r)
		if err == nil {
			got <- c
		}
	}))
	defer srv.Close()
	for _, tc := range []struct {
		name   string
		header string
		status string
	}{
		{"plain GET", "", "426"},
		{"bad key", "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: short\r\n", "400"},
		{"old version", "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "426"},
	} {
		c, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n" + tc.header + "\r\n"))
		line, _ := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if !strings.Contains(line, tc.status) {
			t.Errorf("%s: %q, want %s", tc.name, line, tc.status)
		}
	}
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("GET /ws HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 || resp.Header.Get("Sec-WebSocket-Accept") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("handshake: %v %+v", err, resp)
	}
	sc := <-got
	if err := sc.WriteText([]byte(`{"event":1}`), time.Second); err != nil {
		t.Fatal(err)
	}
	hdr := make([]byte, 2)
	br.Read(hdr[:1])
	br.Read(hdr[1:])
	msg := make([]byte, hdr[1])
	br.Read(msg)
	if hdr[0] != 0x81 || string(msg) != `{"event":1}` {
		t.Fatalf("event frame %x %q", hdr, msg)
	}
	c.Write(masked(opPing, []byte("hi")))
	br.Read(hdr)
	pong := make([]byte, hdr[1])
	br.Read(pong)
	if hdr[0] != 0x8A || string(pong) != "hi" {
		t.Fatalf("pong %x %q", hdr, pong)
	}
	c.Write(masked(opClose, []byte{0x03, 0xE8}))
	select {
	case <-sc.Done():
	case <-time.After(2 * time.Second):
		t.Fatal("the close handshake did not close the connection")
	}
	if err := sc.WriteText([]byte("late"), time.Second); !errors.Is(err, ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
}

// FuzzReadFrame: no input panics or reads beyond the bound.
func FuzzReadFrame(f *testing.F) {
	f.Add(masked(opText, []byte("hello")))
	f.Add(masked(opClose, []byte{3, 232}))
	f.Add([]byte{0x81, 0xFF, 0, 0, 0, 0, 0, 0, 0, 5, 1, 2, 3, 4, 'a'})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := ReadFrame(bytes.NewReader(b), 1024)
		if err == nil && len(fr.Payload) > 1024 {
			t.Fatalf("payload of %d bytes over the bound", len(fr.Payload))
		}
	})
}
