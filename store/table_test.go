package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// fillAll sets every field of m, recursing into messages to depth levels,
// so that a test of an encoding sees every field number of a record.
func fillAll(m protoreflect.Message, depth int) {
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if fd.ContainingOneof() != nil && m.WhichOneof(fd.ContainingOneof()) != nil {
			continue
		}
		switch {
		case fd.IsMap():
			continue // records have no maps
		case fd.IsList():
			list := m.Mutable(fd).List()
			for range 2 {
				if fd.Kind() == protoreflect.MessageKind {
					if depth > 0 {
						e := list.NewElement()
						fillAll(e.Message(), depth-1)
						list.Append(e)
					}
					continue
				}
				list.Append(scalar(fd))
			}
		case fd.Kind() == protoreflect.MessageKind:
			if depth > 0 {
				fillAll(m.Mutable(fd).Message(), depth-1)
			}
		default:
			m.Set(fd, scalar(fd))
		}
	}
}

// scalar returns a non-zero value for a scalar field.
func scalar(fd protoreflect.FieldDescriptor) protoreflect.Value {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(true)
	case protoreflect.EnumKind:
		return protoreflect.ValueOfEnum(1)
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return protoreflect.ValueOfInt32(-7)
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return protoreflect.ValueOfInt64(1 << 40)
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return protoreflect.ValueOfUint32(7)
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return protoreflect.ValueOfUint64(1 << 41)
	case protoreflect.FloatKind:
		return protoreflect.ValueOfFloat32(1.5)
	case protoreflect.DoubleKind:
		return protoreflect.ValueOfFloat64(2.5)
	case protoreflect.StringKind:
		return protoreflect.ValueOfString("value of " + string(fd.Name()))
	case protoreflect.BytesKind:
		return protoreflect.ValueOfBytes([]byte(fd.Name()))
	}
	panic("unhandled kind " + fd.Kind().String())
}

// TestStampEtagEncodesAsMarshal checks, for every kind of record, fully
// filled and empty, that stampEtag's one encoding is exactly the
// deterministic encoding of the stamped record, and that the etag is the
// hash of the encoding without it (so it stays what it always was).
func TestStampEtagEncodesAsMarshal(t *testing.T) {
	records := []proto.Message{
		&exchangev1.Agency{}, &exchangev1.Certificate{}, &exchangev1.Dataset{}, &exchangev1.FocalPoint{},
		&exchangev1.Plan{}, &exchangev1.Referral{}, &exchangev1.WorkingGroup{},
	}
	for _, empty := range records {
		full := empty.ProtoReflect().New().Interface()
		fillAll(full.ProtoReflect(), 3)
		for _, m := range []proto.Message{empty, full} {
			name := string(m.ProtoReflect().Descriptor().Name())
			without := proto.Clone(m)
			setString(without, "etag", "")
			b, err := deterministic.Marshal(without)
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(b)
			wantEtag := hex.EncodeToString(sum[:8])
			if _, fd := field(m, "etag"); fd == nil {
				wantEtag = "" // a record without an etag (certificates) is only encoded
			}

			got, err := stampEtag(m)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if e := getString(m, "etag"); e != wantEtag {
				t.Errorf("%s: etag %q, want the hash of the encoding without it, %q", name, e, wantEtag)
			}
			want, err := deterministic.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s: stampEtag encoded\n%x\nthe stamped record encodes as\n%x", name, got, want)
			}
		}
	}
}

// TestReferralChangeLogEncodingWithholdsDetails checks that what the change
// log keeps of a referral has no identifying details and says so, exactly
// as the deterministic encoding of the referral without them, and that
// encoding it leaves the referral as it was: for a stored record (details
// sealed apart, the spliced path) and for one that carries details.
func TestReferralChangeLogEncodingWithholdsDetails(t *testing.T) {
	stored := &exchangev1.Referral{}
	fillAll(stored.ProtoReflect(), 3)
	stored.Subject, stored.CaseNotes, stored.DetailsWithheld = nil, "", false
	withDetails := &exchangev1.Referral{}
	fillAll(withDetails.ProtoReflect(), 3)
	withDetails.DetailsWithheld = false
	for _, r := range []*exchangev1.Referral{stored, withDetails, {}} {
		before := proto.Clone(r)
		encoded, err := deterministic.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		wrapped, err := referrals.forLog(r, encoded)
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(r, before) {
			t.Fatal("encoding the referral for the change log changed it")
		}
		want := proto.Clone(r).(*exchangev1.Referral)
		want.Subject, want.CaseNotes, want.DetailsWithheld = nil, "", true
		wantBytes, err := deterministic.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(wrapped.GetValue(), wantBytes) {
			t.Errorf("the change log keeps\n%x\nthe referral without details encodes as\n%x", wrapped.GetValue(), wantBytes)
		}
		logged, err := anypb.UnmarshalNew(wrapped, proto.UnmarshalOptions{})
		if err != nil {
			t.Fatalf("the change log's wrapping does not decode: %v", err)
		}
		if !proto.Equal(logged, want) {
			t.Errorf("the change log keeps\n%v\nwant\n%v", logged, want)
		}
	}
}
