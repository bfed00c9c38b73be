package server

import (
	"fmt"
	"sync"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// An old client, built before a field was reserved, still sends it: a
// referral's plaintext subject.name, say, arrives as field 1 of Subject.
// Decoded against the current schema it is not lost but kept as unknown
// bytes, and storing the message would store it. checkNoUnknownFields
// refuses any message that carries unknown fields anywhere inside it, so
// that nothing the exchange does not understand (and so cannot withhold)
// is ever stored.

// checkNoUnknownFields refuses m, INVALID_ARGUMENT naming the path under
// field ("" for a request's top level), if m or any message inside it carries fields its schema does not
// know.
func checkNoUnknownFields(field string, m protoreflect.Message) error {
	if !m.IsValid() {
		return nil
	}
	if len(m.GetUnknown()) > 0 {
		if field == "" {
			field = "request"
		}
		return invalidField(field, fmt.Sprintf("carries fields this exchange does not know (%d bytes); "+
			"identifying details must be sealed into sealed_details (docs/sealing.md): update the client", len(m.GetUnknown())))
	}
	for _, fd := range messageFieldsOf(m.Descriptor()) {
		if !m.Has(fd) {
			continue
		}
		path := string(fd.Name())
		if field != "" {
			path = field + "." + path
		}
		var err error
		switch v := m.Get(fd); {
		case fd.IsList():
			list := v.List()
			for i := 0; i < list.Len() && err == nil; i++ {
				err = checkNoUnknownFields(fmt.Sprintf("%s[%d]", path, i), list.Get(i).Message())
			}
		case fd.IsMap():
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				err = checkNoUnknownFields(fmt.Sprintf("%s[%v]", path, k.Interface()), mv.Message())
				return err == nil
			})
		default:
			err = checkNoUnknownFields(path, v.Message())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// messageFields caches, per message type, the fields that hold messages
// (alone, in a list or as map values): only messages carry unknown fields.
// Going through these alone, rather than every populated field with its
// path built, cut the check's CPU in the server's batch benchmark
// (BenchmarkBatchCreateReferrals) to about a third.
var messageFields sync.Map // protoreflect.MessageDescriptor → []protoreflect.FieldDescriptor

// messageFieldsOf returns md's fields that hold messages, in declaration
// order.
func messageFieldsOf(md protoreflect.MessageDescriptor) []protoreflect.FieldDescriptor {
	if v, ok := messageFields.Load(md); ok {
		return v.([]protoreflect.FieldDescriptor)
	}
	var out []protoreflect.FieldDescriptor
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if fd.IsMap() && fd.MapValue().Message() != nil || !fd.IsMap() && fd.Message() != nil {
			out = append(out, fd)
		}
	}
	messageFields.Store(md, out)
	return out
}
