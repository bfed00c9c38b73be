package server

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc/codes"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// limited restarts the exchange with the given limits.
func limited(t *testing.T, lim Limits) *exchange {
	x := startExchange(t)
	x.stop()
	x.serveWith(func(c *Config) { c.Limits = lim })
	return x
}

func TestAFloodingAgencyIsSlowedAloneWhileOthersGoOn(t *testing.T) {
	x := limited(t, Limits{CallsPerSecond: 20, CallBurst: 20})
	sec := x.asSecretariat()
	x.createAgency(sec, "ilo")
	x.createAgency(sec, "iom")
	flooder, other := x.asAgency("ilo"), x.asAgency("iom")
	ctx := context.Background()

	var wg sync.WaitGroup
	var mu sync.Mutex
	refused := 0
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 40; i++ {
				_, err := flooder.dir.ListAgencies(ctx, &exchangev1.ListAgenciesRequest{})
				if err != nil {
					st := wantCode(t, err, codes.ResourceExhausted)
					if !strings.Contains(st.Message(), "agencies/ilo is over its rate") {
						t.Errorf("message %q", st.Message())
					}
					mu.Lock()
					refused++
					mu.Unlock()
				}
			}
		}()
	}
	var slowest time.Duration
	for i := 0; i < 10; i++ {
		start := time.Now()
		if _, err := other.dir.ListAgencies(ctx, &exchangev1.ListAgenciesRequest{}); err != nil {
			t.Fatalf("the other agency was refused during the flood: %v", err)
		}
		slowest = max(slowest, time.Since(start))
		time.Sleep(60 * time.Millisecond)
	}
	wg.Wait()
	if refused < 200 {
		t.Fatalf("only %d of 320 flooding calls were refused", refused)
	}
	t.Logf("flood: %d of 320 calls refused; the other agency's slowest call took %v", refused, slowest)
}

func TestOversizeMessagesAreRefused(t *testing.T) {
	x := startExchange(t)
	sec := x.asSecretariat()
	before := x.store.Revision()
	_, err := sec.dir.CreateAgency(context.Background(), &exchangev1.CreateAgencyRequest{AgencyId: "big",
		Agency: &exchangev1.Agency{DisplayName: strings.Repeat("x", 5<<20), Kind: exchangev1.AgencyKind_AGENCY_KIND_DONOR}})
	wantCode(t, err, codes.ResourceExhausted)
	if x.store.Revision() != before {
		t.Fatal("an oversize request changed the store")
	}
}

func TestConcurrentStreamsPerConnectionAreBounded(t *testing.T) {
	x := limited(t, Limits{MaxConcurrentStreams: 2, CallsPerSecond: -1})
	sec := x.asSecretariat()
	x.createAgency(sec, "ilo")
	ilo := x.asAgency("ilo")
	open := func(timeout time.Duration) (context.CancelFunc, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		s, err := ilo.referrals().WatchReferrals(ctx, &exchangev1.WatchReferralsRequest{})
		if err == nil {
			_, err = s.Header() // the stream exists only once the server took it
		}
		return cancel, err
	}
	c1, err1 := open(time.Minute)
	c2, err2 := open(time.Minute)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	c3, err := open(300 * time.Millisecond)
	c3()
	wantCode(t, err, codes.DeadlineExceeded)
	c1()
	c4, err := open(5 * time.Second)
	defer c4()
	if err != nil {
		t.Fatalf("a stream after one closed: %v", err)
	}
	c2()
}

// h2Conn opens a raw HTTP/2 connection with the secretariat's certificate.
func h2Conn(t *testing.T, x *exchange) (*tls.Conn, *http2.Framer) {
	t.Helper()
	cfg := x.clientConfig(x.dev.SecretariatCert, x.dev.SecretariatKey)
	cfg.NextProtos = []string{"h2"}
	conn, err := tls.Dial("tcp", x.addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return conn, fr
}

func TestAPingFloodIsCutOff(t *testing.T) {
	x := startExchange(t)
	conn, fr := h2Conn(t, x)
	go func() {
		for i := 0; i < 100; i++ {
			if fr.WritePing(false, [8]byte{byte(i)}) != nil {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("the connection ended without GOAWAY: %v", err)
		}
		if g, ok := f.(*http2.GoAwayFrame); ok {
			if g.ErrCode != http2.ErrCodeEnhanceYourCalm || !strings.Contains(string(g.DebugData()), "too_many_pings") {
				t.Fatalf("GOAWAY %v %q", g.ErrCode, g.DebugData())
			}
			return
		}
	}
}

func TestAConnectionThatNeverHandshakesIsClosed(t *testing.T) {
	x := limited(t, Limits{ConnectionTimeout: 300 * time.Millisecond, CallsPerSecond: -1})
	conn, err := net.Dial("tcp", x.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	_, err = conn.Read(make([]byte, 1))
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the server kept a silent connection open for 5 s")
	}
	if waited := time.Since(start); waited > 3*time.Second {
		t.Fatalf("closed after %v", waited)
	}
}
