package server

import (
	"testing"

	"google.golang.org/protobuf/proto"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// A pull response built around stored row encodings is the message the
// proto codec would have sent for the decoded rows: same rows, token and
// revision, with or without each.
func TestPullResponseAroundEncodedRowsIsTheResponse(t *testing.T) {
	rows := []*exchangev1.Row{
		{Period: "2026-01", Location: "KH-12", Categories: map[string]string{"sex": "female"},
			Values: map[string]*exchangev1.Value{"returned": {Kind: &exchangev1.Value_IntValue{IntValue: 12}}}, Revision: 7},
		{Period: "2026-02", Location: "TH-10", Deleted: true},
		{}, // a row whose encoding is empty is still a row
	}
	encoded := encodeRows(t, rows)
	for _, want := range []*exchangev1.PullDatasetRowsResponse{
		{Rows: rows, ResumeToken: "abc_-", Revision: 1796673179600207},
		{Rows: rows[:1]},
		{ResumeToken: "t"},
		{Revision: 1},
		{},
	} {
		checkEncodedResponse(t, pullResponse(encoded[:len(want.GetRows())], want.GetResumeToken(), want.GetRevision()), want, new(exchangev1.PullDatasetRowsResponse))
	}
}

// A row watch's response built around stored row encodings is the
// message the proto codec would have sent for the decoded rows.
func TestWatchRowsResponseAroundEncodedRowsIsTheResponse(t *testing.T) {
	rows := []*exchangev1.Row{
		{Period: "2026-01", Location: "KH-12", Values: map[string]*exchangev1.Value{"returned": {Kind: &exchangev1.Value_IntValue{IntValue: 12}}}, Revision: 7},
		{Period: "2026-02", Location: "TH-10", Deleted: true, Revision: 9},
	}
	encoded := encodeRows(t, rows)
	for _, want := range []*exchangev1.WatchDatasetRowsResponse{
		{Rows: rows, Revision: 1796673179600207},
		{Rows: rows[1:], Revision: 9},
		{Revision: 3},
		{},
	} {
		checkEncodedResponse(t, watchRowsResponse(encoded[len(rows)-len(want.GetRows()):], want.GetRevision()), want, new(exchangev1.WatchDatasetRowsResponse))
	}
}

// encodeRows encodes each row as the store holds it.
func encodeRows(t *testing.T, rows []*exchangev1.Row) [][]byte {
	t.Helper()
	var encoded [][]byte
	for _, r := range rows {
		b, err := proto.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		encoded = append(encoded, b)
	}
	return encoded
}

// checkEncodedResponse checks that msg decodes, into got, to want, and
// is exactly as large as the codec's encoding of want, in a buffer of
// that size.
func checkEncodedResponse(t *testing.T, msg *encodedMessage, want, got proto.Message) {
	t.Helper()
	if err := proto.Unmarshal(msg.bytes, got); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if size := proto.Size(want); len(msg.bytes) != size || cap(msg.bytes) != size {
		t.Errorf("%d bytes in a buffer of %d, want %d, as the codec makes", len(msg.bytes), cap(msg.bytes), size)
	}
}
