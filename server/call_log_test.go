package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	"github.com/alltogether/exchange/pki"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// loggedExchange restarts an exchange whose logger writes JSON at level
// to the returned buffer.
func loggedExchange(t *testing.T, level slog.Level) (*exchange, *lockedBuffer) {
	t.Helper()
	x := startExchange(t)
	x.stop()
	logs := &lockedBuffer{}
	x.serveWith(func(c *Config) {
		c.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: level}))
	})
	return x, logs
}

// callLines returns the "finished call" lines of method in the log, each
// decoded; it fails the test on a line that is not JSON.
func callLines(t *testing.T, logs *lockedBuffer, method string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %v: %s", err, line)
		}
		if m["msg"] == "finished call" && m["grpc.method"] == method {
			out = append(out, m)
		}
	}
	return out
}

// oneCallLine returns the only "finished call" line of method.
func oneCallLine(t *testing.T, logs *lockedBuffer, method string) map[string]any {
	t.Helper()
	lines := callLines(t, logs, method)
	if len(lines) != 1 {
		t.Fatalf("%d lines for %s, want 1:\n%s", len(lines), method, logs.String())
	}
	return lines[0]
}

// wantKeys fails the test unless line has exactly the keys given.
func wantKeys(t *testing.T, line map[string]any, keys ...string) {
	t.Helper()
	got := slices.Sorted(maps.Keys(line))
	slices.Sort(keys)
	if !slices.Equal(got, keys) {
		t.Errorf("keys %v,\nwant %v", got, keys)
	}
}

// wantValues fails the test unless line holds each of want.
func wantValues(t *testing.T, line map[string]any, want map[string]any) {
	t.Helper()
	for k, v := range want {
		if line[k] != v {
			t.Errorf("%s = %#v, want %#v", k, line[k], v)
		}
	}
}

// lineTime parses a time key of a line in the format the middleware used.
func lineTime(t *testing.T, line map[string]any, key string) time.Time {
	t.Helper()
	s, _ := line[key].(string)
	ts, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatalf("%s = %#v: %v", key, line[key], err)
	}
	return ts
}

// commonKeys are the keys of every call line.
var commonKeys = []string{"time", "level", "msg", "caller", "protocol", "grpc.component", "grpc.service", "grpc.method",
	"grpc.method_type", "peer.address", "grpc.start_time", "request_id", "grpc.code", "grpc.time_ms"}

func TestASuccessfulCallLogsOneLineWithEveryKey(t *testing.T) {
	x, logs := loggedExchange(t, slog.LevelInfo)
	sec := x.asSecretariat()
	x.createAgency(sec, "ilo", exchangev1.Niche_NICHE_PSYCHOSOCIAL_COUNSELLING)
	x.createAgency(sec, "iom", exchangev1.Niche_NICHE_PSYCHOSOCIAL_COUNSELLING)
	ilo := x.asAgency("ilo")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	deadline, _ := ctx.Deadline()

	before := time.Now()
	var header metadata.MD
	req := &exchangev1.CreateReferralRequest{Referral: newReferral("iom"), RequestId: nextRequestID()}
	if _, err := ilo.referrals().CreateReferral(ctx, req, grpc.Header(&header)); err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	line := oneCallLine(t, logs, "CreateReferral")

	wantKeys(t, line, append(commonKeys, "grpc.request.deadline")...)
	wantValues(t, line, map[string]any{
		"level": "INFO", "msg": "finished call", "protocol": "grpc", "grpc.component": "server",
		"grpc.service": "alltogether.exchange.v1.ReferralService", "grpc.method": "CreateReferral", "grpc.method_type": "unary",
		"grpc.code": "OK", "caller": "agency/ilo", "request_id": req.GetRequestId(),
	})
	if ids := header.Get(requestIDHeader); len(ids) != 1 || line["request_id"] != ids[0] {
		t.Errorf("request_id %#v, x-request-id header %v", line["request_id"], ids)
	}
	if host, port, err := net.SplitHostPort(fmt.Sprint(line["peer.address"])); err != nil || host != "127.0.0.1" || port == "" {
		t.Errorf("peer.address %#v", line["peer.address"])
	}
	// Both times are to the second, as the middleware formatted them.
	if start := lineTime(t, line, "grpc.start_time"); start.Before(before.Truncate(time.Second)) || start.After(after) {
		t.Errorf("grpc.start_time %v not within the call (%v to %v)", start, before, after)
	}
	if got := lineTime(t, line, "grpc.request.deadline"); !got.Equal(deadline.Truncate(time.Second)) {
		t.Errorf("grpc.request.deadline %v, want %v", got, deadline.Truncate(time.Second))
	}
	// grpc.time_ms stays a string of milliseconds, as it always was.
	ms, ok := line["grpc.time_ms"].(string)
	if f, err := strconv.ParseFloat(ms, 64); !ok || err != nil || f < 0 || f > float64(after.Sub(before).Milliseconds()+1) {
		t.Errorf("grpc.time_ms %#v", line["grpc.time_ms"])
	}

	// A call without a deadline has no deadline key; a request id from
	// the header is the one logged.
	mine := metadata.AppendToOutgoingContext(context.Background(), requestIDHeader, "trace-7")
	if _, err := sec.dir.GetAgency(mine, &exchangev1.GetAgencyRequest{Name: "agencies/ilo"}); err != nil {
		t.Fatal(err)
	}
	get := oneCallLine(t, logs, "GetAgency")
	wantKeys(t, get, commonKeys...)
	wantValues(t, get, map[string]any{"caller": "secretariat", "request_id": "trace-7", "grpc.code": "OK", "level": "INFO"})
}

func TestARefusedCallLogsItsCodeAtItsLevel(t *testing.T) {
	x, logs := loggedExchange(t, slog.LevelInfo)
	sec := x.asSecretariat()
	x.createAgency(sec, "ilo", exchangev1.Niche_NICHE_PSYCHOSOCIAL_COUNSELLING)
	ilo := x.asAgency("ilo")
	ctx := context.Background()

	// NOT_FOUND is the client's business: Info, with the error.
	_, err := sec.dir.GetAgency(ctx, &exchangev1.GetAgencyRequest{Name: "agencies/nobody"})
	wantCode(t, err, codes.NotFound)
	line := oneCallLine(t, logs, "GetAgency")
	wantKeys(t, line, append(commonKeys, "grpc.error")...)
	wantValues(t, line, map[string]any{"level": "INFO", "grpc.code": "NotFound", "caller": "secretariat", "grpc.error": err.Error()})

	// PERMISSION_DENIED is a Warn; admit refused it, yet the line names
	// the caller and the request id.
	var header metadata.MD
	_, err = ilo.dir.CreateAgency(ctx, &exchangev1.CreateAgencyRequest{AgencyId: "new", RequestId: "refused-1",
		Agency: &exchangev1.Agency{DisplayName: "x", Kind: exchangev1.AgencyKind_AGENCY_KIND_DONOR}}, grpc.Header(&header))
	wantCode(t, err, codes.PermissionDenied)
	var refused map[string]any
	for _, l := range callLines(t, logs, "CreateAgency") {
		if l["caller"] == "agency/ilo" {
			refused = l
		}
	}
	if refused == nil {
		t.Fatalf("no line for the refused CreateAgency:\n%s", logs.String())
	}
	wantKeys(t, refused, append(commonKeys, "grpc.error")...)
	wantValues(t, refused, map[string]any{"level": "WARN", "grpc.code": "PermissionDenied", "request_id": "refused-1"})
	if ids := header.Get(requestIDHeader); len(ids) != 1 || ids[0] != "refused-1" {
		t.Errorf("x-request-id header %v", ids)
	}
}

func TestAStreamLogsOneLineWhenItEnds(t *testing.T) {
	x, logs := loggedExchange(t, slog.LevelInfo)
	sec := x.asSecretariat()
	x.createAgency(sec, "ilo")
	ilo := x.asAgency("ilo")
	ctx := metadata.AppendToOutgoingContext(context.Background(), requestIDHeader, "pull-1")
	if _, err := ilo.datasets().CreateDataset(ctx, &exchangev1.CreateDatasetRequest{Parent: "agencies/ilo", DatasetId: "returns", Dataset: returnsDataset()}); err != nil {
		t.Fatal(err)
	}
	write(t, ilo, "agencies/ilo/datasets/returns", row("2026-03", "KH-12", "female", 4))

	stream, err := ilo.datasets().PullDatasetRows(ctx, &exchangev1.PullDatasetRowsRequest{Dataset: "agencies/ilo/datasets/returns"})
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := stream.Recv(); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	header, err := stream.Header()
	if err != nil {
		t.Fatal(err)
	}
	line := oneCallLine(t, logs, "PullDatasetRows")
	wantKeys(t, line, commonKeys...)
	wantValues(t, line, map[string]any{
		"level": "INFO", "grpc.code": "OK", "grpc.service": "alltogether.exchange.v1.DatasetService",
		"grpc.method_type": "server_stream", "caller": "agency/ilo", "request_id": "pull-1",
	})
	if ids := header.Get(requestIDHeader); len(ids) != 1 || ids[0] != line["request_id"] {
		t.Errorf("request_id %#v, x-request-id header %v", line["request_id"], ids)
	}
}

func TestTheCallLogCarriesNoPayload(t *testing.T) {
	x, logs := loggedExchange(t, slog.LevelDebug)
	sec := x.asSecretariat()
	x.createAgency(sec, "ilo", exchangev1.Niche_NICHE_PSYCHOSOCIAL_COUNSELLING)
	x.createAgency(sec, "iom", exchangev1.Niche_NICHE_PSYCHOSOCIAL_COUNSELLING)
	ilo := x.asAgency("ilo")
	ctx := context.Background()
	r := refer(t, ilo, "iom") // newReferral plants the marker in its details
	bad := newReferral("iom")
	bad.Subject.Languages = []string{marker}
	_, err := ilo.referrals().CreateReferral(ctx, &exchangev1.CreateReferralRequest{Referral: bad, RequestId: nextRequestID()})
	wantCode(t, err, codes.InvalidArgument)
	_, err = ilo.referrals().GetReferral(ctx, &exchangev1.GetReferralRequest{Name: r.GetName() + marker})
	if err == nil {
		t.Fatal("a name with the marker was found")
	}

	lines := callLines(t, logs, "CreateReferral")
	if len(lines) != 2 || lines[0]["grpc.code"] != "OK" || lines[1]["grpc.code"] != "InvalidArgument" || lines[1]["level"] != "INFO" {
		t.Fatalf("CreateReferral lines %v", lines)
	}
	if len(callLines(t, logs, "GetReferral")) != 1 {
		t.Fatalf("no line for the GetReferral:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), marker) {
		t.Errorf("the marker leaked into the log:\n%s", logs.String())
	}
}

func TestTheCallLogKeepsToTheLoggersLevel(t *testing.T) {
	x, logs := loggedExchange(t, slog.LevelWarn)
	sec := x.asSecretariat()
	x.createAgency(sec, "ilo")
	ilo := x.asAgency("ilo")
	if err := listAgencies(ilo); err != nil {
		t.Fatal(err)
	}
	_, err := ilo.dir.SuspendAgency(context.Background(), &exchangev1.SuspendAgencyRequest{Name: "agencies/ilo", Reason: "x"})
	wantCode(t, err, codes.PermissionDenied)
	if n := len(callLines(t, logs, "ListAgencies")); n != 0 {
		t.Errorf("%d Info lines from a Warn logger", n)
	}
	if l := oneCallLine(t, logs, "SuspendAgency"); l["level"] != "WARN" {
		t.Errorf("level %v", l["level"])
	}
}

func TestADroppedCallLineCostsNoAllocation(t *testing.T) {
	s := &Server{log: slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	rec := &callRecord{requestID: "r", caller: pki.Agency("ilo")}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	if allocs := testing.AllocsPerRun(100, func() {
		s.logCall(ctx, "/alltogether.exchange.v1.DirectoryService/ListAgencies", "unary", start, rec, nil)
	}); allocs != 0 {
		t.Errorf("a dropped line allocated %v times per call", allocs)
	}
}

func TestCallLogLevelsAreTheMiddlewares(t *testing.T) {
	for c := codes.Code(0); c <= 20; c++ {
		if got, want := callLogLevel(c), slog.Level(logging.DefaultServerCodeToLevel(c)); got != want {
			t.Errorf("%v: level %v, the middleware's %v", c, got, want)
		}
	}
}

func TestCallLogMillisecondsArePrintedAsBefore(t *testing.T) {
	for _, d := range []time.Duration{0, 999, time.Microsecond, 1234567, 42 * time.Millisecond, 1500 * time.Millisecond,
		17 * time.Minute, 3 * time.Hour, 1234567891234} {
		if got, want := formatMillis(d), logging.DurationToTimeMillisFields(d)[1]; got != want {
			t.Errorf("%v: %q, the middleware's %q", d, got, want)
		}
	}
}

func TestSplitFullMethod(t *testing.T) {
	for in, want := range map[string][2]string{
		"/alltogether.exchange.v1.DirectoryService/GetAgency": {"alltogether.exchange.v1.DirectoryService", "GetAgency"},
		"/test.Panicking/Do": {"test.Panicking", "Do"},
		"noslash":            {"unknown", "unknown"},
	} {
		if s, m := splitFullMethod(in); s != want[0] || m != want[1] {
			t.Errorf("%q: %q %q, want %q", in, s, m, want)
		}
	}
}
