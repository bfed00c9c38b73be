package server

import (
	"fmt"

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
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		path := string(fd.Name())
		if field != "" {
			path = field + "." + path
		}
		switch {
		case fd.IsList() && fd.Message() != nil:
			list := v.List()
			for i := 0; i < list.Len() && err == nil; i++ {
				err = checkNoUnknownFields(fmt.Sprintf("%s[%d]", path, i), list.Get(i).Message())
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				err = checkNoUnknownFields(fmt.Sprintf("%s[%v]", path, k.Interface()), mv.Message())
				return err == nil
			})
		case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
			err = checkNoUnknownFields(path, v.Message())
		}
		return err == nil
	})
	return err
}
