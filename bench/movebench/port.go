package main

import "net"

type portListener struct {
	net.Listener
	port int
}

// netListen asks the kernel for a free loopback port.
func netListen() (*portListener, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	return &portListener{l, l.Addr().(*net.TCPAddr).Port}, nil
}
