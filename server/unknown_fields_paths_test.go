package server

import (
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/store"
)

// checkNoUnknownFields goes into every field that holds messages, alone,
// in a list or as map values, and names the path to the message that
// carries the unknown field; fields that hold no messages are passed by.
func TestUnknownFieldsAreFoundInListsAndMaps(t *testing.T) {
	batch := func() *exchangev1.BatchCreateReferralsRequest {
		return &exchangev1.BatchCreateReferralsRequest{Requests: []*exchangev1.CreateReferralRequest{
			{RequestId: "a", Referral: newReferral("iom")},
			{RequestId: "b", Referral: newReferral("iom")},
		}}
	}
	row := func() *exchangev1.Row {
		return &exchangev1.Row{Period: "2026-03", Categories: map[string]string{"sex": "female"},
			Values: map[string]*exchangev1.Value{"returned": {Kind: &exchangev1.Value_IntValue{IntValue: 3}}}}
	}
	for _, c := range []struct {
		want  string // "" when nothing is unknown
		spoil func() proto.Message
	}{
		{"", func() proto.Message { return batch() }},
		{"requests[1].referral.subject", func() proto.Message {
			b := batch()
			withUnknownText(b.Requests[1].Referral.Subject, 15, marker)
			return b
		}},
		{"requests[0]", func() proto.Message {
			b := batch()
			withUnknownText(b.Requests[0], 15, marker)
			return b
		}},
		{"", func() proto.Message { return row() }},
		{"values[returned]", func() proto.Message {
			r := row()
			withUnknownText(r.Values["returned"], 15, marker)
			return r
		}},
	} {
		err := checkNoUnknownFields("", c.spoil().ProtoReflect())
		var se *store.Error
		switch {
		case c.want == "" && err != nil:
			t.Errorf("nothing unknown, refused: %v", err)
		case c.want != "" && (!errors.As(err, &se) || se.Field != c.want):
			t.Errorf("unknown field in %s: got %v", c.want, err)
		}
	}
}
