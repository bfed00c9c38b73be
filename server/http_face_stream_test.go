package server

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/alltogether/exchange/pki"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// connectStream calls a server-streaming method with the Connect
// protocol's JSON encoding (docs/clients.md): one enveloped request, then
// enveloped messages up to an end-of-stream envelope (flag 2), whose JSON
// carries the error, if any. It returns the messages' JSON and the
// end-of-stream JSON.
func (c jsonClient) connectStream(method string, req proto.Message) (msgs [][]byte, end []byte) {
	c.t.Helper()
	b, err := protojson.Marshal(req)
	if err != nil {
		c.t.Fatal(err)
	}
	var body bytes.Buffer
	body.WriteByte(0)
	binary.Write(&body, binary.BigEndian, uint32(len(b)))
	body.Write(b)
	r, err := http.NewRequest("POST", c.base+"/"+method, &body)
	if err != nil {
		c.t.Fatal(err)
	}
	r.Header.Set("Content-Type", "application/connect+json")
	resp, err := c.http.Do(r)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		c.t.Fatalf("%s: HTTP %d %s", method, resp.StatusCode, b)
	}
	for {
		var head [5]byte
		if _, err := io.ReadFull(resp.Body, head[:]); err != nil {
			c.t.Fatalf("%s: the stream ended without its end envelope: %v", method, err)
		}
		msg := make([]byte, binary.BigEndian.Uint32(head[1:]))
		if _, err := io.ReadFull(resp.Body, msg); err != nil {
			c.t.Fatal(err)
		}
		if head[0]&2 != 0 {
			return msgs, msg
		}
		msgs = append(msgs, msg)
	}
}

func TestJSONPullsDatasetRowsOverConnectStreaming(t *testing.T) {
	x, ilo, iom, _, _, ngo := jointDataset(t)
	const returns = "agencies/ilo/datasets/returns"
	write(t, iom, returns, row("2026-03", "KH-12", "female", 10), row("2026-03", "KH-2", "male", 3))
	const pull = "alltogether.exchange.v1.DatasetService/PullDatasetRows"
	req := &exchangev1.PullDatasetRowsRequest{Dataset: returns}

	msgs, end := x.jsonClientFor(t, pki.Agency("ilo"), false).connectStream(pull, req)
	var rows []*exchangev1.Row
	for _, m := range msgs {
		var resp exchangev1.PullDatasetRowsResponse
		if err := protojson.Unmarshal(m, &resp); err != nil {
			t.Fatalf("%v: %s", err, m)
		}
		rows = append(rows, resp.GetRows()...)
	}
	want, _ := pullAll(t, ilo, req)
	if len(rows) != 2 || len(rows) != len(want) {
		t.Fatalf("pulled %d rows over Connect, %d over gRPC", len(rows), len(want))
	}
	for i := range rows {
		if !proto.Equal(rows[i], want[i]) {
			t.Fatalf("row %d over Connect %v, over gRPC %v", i, rows[i], want[i])
		}
	}
	if string(bytes.TrimSpace(end)) != "{}" {
		t.Fatalf("a pull that succeeded ended with %s", end)
	}

	// ngo is outside the audience: the stream ends with not_found, as the
	// gRPC pull fails with NOT_FOUND.
	msgs, end = x.jsonClientFor(t, pki.Agency("ngo"), false).connectStream(pull, req)
	var failed struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal(end, &failed); err != nil || len(msgs) != 0 || failed.Error.Code != "not_found" {
		t.Fatalf("ngo's pull: %d messages, end %s (%v)", len(msgs), end, err)
	}
	stream, err := ngo.datasets().PullDatasetRows(t.Context(), req)
	if err == nil {
		_, err = stream.Recv()
	}
	wantCode(t, err, codes.NotFound)
}
