package server

import (
	"fmt"
	"sync"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/alltogether/exchange/proto/alltogether/exchange/v1/validfast"
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
	// Code generated for each message type answers first, without
	// reflection; the walk below names what it found.
	if !validfast.Unknown(m.Interface()) {
		return nil
	}
	path, size, found := findUnknownFields(m)
	if !found {
		return nil
	}
	path = joinFieldPath(field, path)
	if path == "" {
		path = "request"
	}
	return invalidField(path, fmt.Sprintf("carries fields this exchange does not know (%d bytes); "+
		"identifying details must be sealed into sealed_details (docs/sealing.md): update the client", size))
}

// findUnknownFields returns the path, relative to m ("" for m itself), of
// the first message in m that carries unknown fields, and their size in
// bytes. The path is built only for the message found, on the way back
// up: a valid request, the usual one, costs no string.
func findUnknownFields(m protoreflect.Message) (path string, size int, found bool) {
	if !m.IsValid() {
		return "", 0, false
	}
	if unknown := m.GetUnknown(); len(unknown) > 0 {
		return "", len(unknown), true
	}
	for _, fd := range messageFieldsOf(m.Descriptor()) {
		if !m.Has(fd) {
			continue
		}
		name := string(fd.Name())
		switch v := m.Get(fd); {
		case fd.IsList():
			list := v.List()
			for i := range list.Len() {
				if path, size, found := findUnknownFields(list.Get(i).Message()); found {
					return joinFieldPath(fmt.Sprintf("%s[%d]", name, i), path), size, true
				}
			}
		case fd.IsMap():
			if path, size, found := findUnknownFieldsInMap(name, v.Map()); found {
				return path, size, true
			}
		default:
			if path, size, found := findUnknownFields(v.Message()); found {
				return joinFieldPath(name, path), size, true
			}
		}
	}
	return "", 0, false
}

// findUnknownFieldsInMap is findUnknownFields for the message values of
// the map field name, apart so that its closure's variables are not moved
// to the heap for every message.
func findUnknownFieldsInMap(name string, entries protoreflect.Map) (path string, size int, found bool) {
	var key protoreflect.MapKey
	entries.Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
		path, size, found = findUnknownFields(mv.Message())
		key = k
		return !found
	})
	if !found {
		return "", 0, false
	}
	return joinFieldPath(fmt.Sprintf("%s[%v]", name, key.Interface()), path), size, true
}

// joinFieldPath joins a field path and a path under it, either of which
// may be empty.
func joinFieldPath(outer, inner string) string {
	switch {
	case outer == "":
		return inner
	case inner == "":
		return outer
	}
	return outer + "." + inner
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
