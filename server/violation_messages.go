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
// rule for a refusal. It keeps protovalidate's text except where that
// text hides what the caller must do: a field left empty is "is required"
// (not "must be at least 1 characters", "must not be in list [0]" or a
// regular expression the empty value does not match), an unset enum names
// its choices, and a malformed request_id gets its format in words.
func describeViolation(v *protovalidate.Violation) string {
	text := v.Proto.GetMessage()
	switch v.Proto.GetRuleId() {
	case "string.min_len", "bytes.min_len":
		if v.RuleValue.IsValid() && v.RuleValue.Interface() == uint64(1) {
			return "is required"
		}
	case "enum.not_in":
		if n, ok := v.FieldValue.Interface().(protoreflect.EnumNumber); ok && n == 0 && v.FieldDescriptor != nil && v.FieldDescriptor.Enum() != nil {
			return "is required: choose one of " + enumChoices(v.FieldDescriptor.Enum(), v.RuleValue)
		}
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
