package faultproxy

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

func TestFromServerCountsWhatReachedClients(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789"), 100_000) // 1 MB
	p := start(t, echoServer(t, big))
	p.CutAfter(250_000)
	read := 0
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
		read += len(got)
	}
	// An echo of what the client sends counts too.
	p.CutAfter(0)
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, make([]byte, len(big))); err != nil {
		t.Fatal(err)
	}
	if _, err := roundTrip(c, "hello", 2*time.Second); err != nil {
		t.Fatal(err)
	}
	read += len(big) + len("hello")
	if got := p.FromServer(); got != int64(read) || read != 2*250_000+len(big)+5 {
		t.Fatalf("FromServer = %d, clients read %d bytes", got, read)
	}
}
