package faultproxy

import (
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// TestACutWhileDiallingLeavesNoServerConnection cuts every link over and
// over while clients connect, so that cuts land while the proxy dials the
// target: the server side of a link cut meanwhile must be closed too, not
// left open with nobody to close it, and the race detector must find
// nothing (it caught a cut reading the link's server side as it was set).
func TestACutWhileDiallingLeavesNoServerConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var open atomic.Int64 // target-side connections not yet closed
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			open.Add(1)
			go func() {
				defer open.Add(-1)
				defer c.Close()
				buf := make([]byte, 64)
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
				}
			}()
		}
	}()
	p := start(t, ln.Addr().String())
	stop := make(chan struct{})
	cutting := make(chan struct{})
	go func() {
		defer close(cutting)
		for {
			select {
			case <-stop:
				return
			default:
				p.CutAll()
			}
		}
	}()
	for range 300 {
		c, err := net.Dial("tcp", p.Addr())
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	close(stop)
	<-cutting
	p.CutAll()
	deadline := time.Now().Add(10 * time.Second)
	for open.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections to the target still open after every link was cut", open.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
