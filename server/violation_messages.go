package server

import (
	"strings"

	"buf.build/go/protovalidate"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// requestIDPattern is the rule on every request_id (an idempotency key the
// client chooses and sends again on a retry), and requestIDFormat says it
// in words.
const (
	requestIDPattern = "^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
	requestIDFormat  = "1 to 64 letters, digits, '.', '_', ':' or '-', starting with a letter or digit (an idempotency key: a retry sends the same one)"
)

// maxEnumChoicesBytes bounds the list of choices an unset enum's
// violation names, within maxViolationTextBytes.
const maxEnumChoicesBytes = 200

// describeViolation is the one place that words a violated protovalidate
// rule for a refusal, of a rule found in a message of type root. It keeps
// protovalidate's text except where that text hides what the caller must
// do: a field left empty is "is required" (not "must be at least 1
// characters", "must not be in list [0]" or a regular expression the
// empty value does not match), an unset enum names its choices (in a list,
// an item left at 0 too), and a malformed request_id gets its format in
// words.
func describeViolation(v *protovalidate.Violation, root protoreflect.MessageDescriptor) string {
	text := v.Proto.GetMessage()
	switch v.Proto.GetRuleId() {
	case "string.min_len", "bytes.min_len":
		if v.RuleValue.IsValid() && v.RuleValue.Interface() == uint64(1) {
			return "is required"
		}
	case "enum.not_in":
		if !v.FieldValue.IsValid() {
			break
		}
		n, ok := v.FieldValue.Interface().(protoreflect.EnumNumber)
		fd := violatedField(v, root)
		if !ok || n != 0 || fd == nil || fd.Enum() == nil {
			break
		}
		if fd.IsList() {
			return "must be one of " + enumChoices(fd.Enum(), v.RuleValue) + " (0, unspecified, is not a choice)"
		}
		return "is required: choose one of " + enumChoices(fd.Enum(), v.RuleValue)
	case "string.pattern":
		s, _ := v.FieldValue.Interface().(string)
		pattern, _ := v.RuleValue.Interface().(string)
		switch {
		case pattern == requestIDPattern && s == "":
			return "is required: " + requestIDFormat
		case pattern == requestIDPattern:
			return "must be " + requestIDFormat
		case s == "":
			return "is required: a value that matches `" + pattern + "`"
		}
	}
	return text
}

// violatedField returns the field v concerns. protovalidate leaves
// FieldDescriptor unset for the rules on a list's items, so then it is
// found by following the violation's path of field numbers from root.
func violatedField(v *protovalidate.Violation, root protoreflect.MessageDescriptor) protoreflect.FieldDescriptor {
	if v.FieldDescriptor != nil {
		return v.FieldDescriptor
	}
	var fd protoreflect.FieldDescriptor
	md := root
	for _, e := range v.Proto.GetField().GetElements() {
		if md == nil {
			return nil
		}
		if fd = md.Fields().ByNumber(protoreflect.FieldNumber(e.GetFieldNumber())); fd == nil {
			return nil
		}
		md = fd.Message()
	}
	return fd
}

// enumChoices names the values of e a request may use: all but those the
// not_in rule lists (notIn, a list of numbers), as many as fit
// maxEnumChoicesBytes.
func enumChoices(e protoreflect.EnumDescriptor, notIn protoreflect.Value) string {
	refused := map[protoreflect.EnumNumber]bool{0: true}
	if notIn.IsValid() {
		if list, ok := notIn.Interface().(protoreflect.List); ok {
			for i := range list.Len() {
				refused[protoreflect.EnumNumber(list.Get(i).Int())] = true
			}
		}
	}
	var b strings.Builder
	values := e.Values()
	for i := range values.Len() {
		value := values.Get(i)
		if refused[value.Number()] {
			continue
		}
		if b.Len() > 0 {
			if b.Len()+len(value.Name()) > maxEnumChoicesBytes {
				b.WriteString(", …")
				break
			}
			b.WriteString(", ")
		}
		b.WriteString(string(value.Name()))
	}
	return b.String()
}
