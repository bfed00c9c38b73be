package faultproxy

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

// echoServer answers every connection by echoing what it reads; big, when
// set, is written to each new connection first.
func echoServer(t *testing.T, big []byte) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if big != nil {
					if _, err := c.Write(big); err != nil {
						return
					}
				}
				io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

func start(t *testing.T, target string) *Proxy {
	t.Helper()
	p, err := New(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func roundTrip(c net.Conn, msg string, wait time.Duration) (string, error) {
	c.SetDeadline(time.Now().Add(wait))
	if _, err := c.Write([]byte(msg)); err != nil {
		return "", err
	}
	buf := make([]byte, len(msg))
	_, err := io.ReadFull(c, buf)
	return string(buf), err
}

func TestPassForwards(t *testing.T) {
	p := start(t, echoServer(t, nil))
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got, err := roundTrip(c, "hello", 2*time.Second)
	if err != nil || got != "hello" {
		t.Fatalf("echo through the proxy = %q, %v; want hello", got, err)
	}
}

func TestRefuseClosesNewAndOpenConnections(t *testing.T) {
	p := start(t, echoServer(t, nil))
	open, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	if _, err := roundTrip(open, "x", 2*time.Second); err != nil {
		t.Fatal(err)
	}
	p.SetMode(Refuse)
	if _, err := roundTrip(open, "y", 2*time.Second); err == nil {
		t.Fatal("an open connection still echoed after Refuse")
	}
	c, err := net.Dial("tcp", p.Addr())
	if err == nil {
		defer c.Close()
		if _, err := roundTrip(c, "z", 2*time.Second); err == nil {
			t.Fatal("a new connection echoed while refusing")
		}
	}
	p.SetMode(Pass)
	c2, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if got, err := roundTrip(c2, "back", 2*time.Second); err != nil || got != "back" {
		t.Fatalf("after Pass again: %q, %v", got, err)
	}
}

func TestBlackholeStallsThenFlows(t *testing.T) {
	p := start(t, echoServer(t, nil))
	p.SetMode(Blackhole)
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := roundTrip(c, "ping", 300*time.Millisecond); err == nil {
		t.Fatal("a blackholed connection answered")
	} else if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("blackholed read ended with %v, want a timeout (the connection stays open)", err)
	}
	p.SetMode(Pass)
	c.SetDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("after Pass the stalled bytes arrived as %q, %v", buf, err)
	}
}

func TestCutAfterCutsEachConnectionAtTheCount(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789"), 100_000) // 1 MB
	p := start(t, echoServer(t, big))
	p.CutAfter(250_000)
	for i := 0; i < 2; i++ {
		c, err := net.Dial("tcp", p.Addr())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		got, err := io.ReadAll(c)
		c.Close()
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		if len(got) != 250_000 || !bytes.Equal(got, big[:250_000]) {
			t.Fatalf("connection %d got %d bytes, want the first 250000", i, len(got))
		}
	}
	if p.Cuts() != 2 {
		t.Fatalf("Cuts = %d, want 2", p.Cuts())
	}
}

func TestCutAllDropsOpenConnections(t *testing.T) {
	p := start(t, echoServer(t, nil))
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := roundTrip(c, "a", 2*time.Second); err != nil {
		t.Fatal(err)
	}
	p.CutAll()
	if _, err := roundTrip(c, "b", 2*time.Second); err == nil {
		t.Fatal("a cut connection still echoed")
	}
}

func TestLatencyDelaysEachWay(t *testing.T) {
	p := start(t, echoServer(t, nil))
	p.SetLatency(100 * time.Millisecond)
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	begin := time.Now()
	if _, err := roundTrip(c, "slow", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(begin); d < 200*time.Millisecond {
		t.Fatalf("a round trip took %v, want at least 200ms (100ms each way)", d)
	}
}
