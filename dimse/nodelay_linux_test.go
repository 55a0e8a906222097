package dimse

import (
	"net"
	"syscall"
	"testing"
)

func noDelay(t *testing.T, c net.Conn) int {
	t.Helper()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var serr error
	rc.Control(func(fd uintptr) { v, serr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_NODELAY) })
	if serr != nil {
		t.Fatal(serr)
	}
	return v
}

// TestTCPNoDelay asserts that server and client sockets have TCP_NODELAY.
func TestTCPNoDelay(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	cc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	sc := <-accepted
	defer sc.Close()
	sc.(*net.TCPConn).SetNoDelay(false)
	var s Server
	a := s.newConn(sc)
	if noDelay(t, a.nc) == 0 {
		t.Fatal("server socket without TCP_NODELAY")
	}
	if noDelay(t, cc) == 0 { // what Dial gets from net.Dialer, asserted by Dial as well
		t.Fatal("client socket without TCP_NODELAY")
	}
}
