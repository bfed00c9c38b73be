package rowfile

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// dateLayout is the cell form of a date: YYYY-MM-DD.
const dateLayout = "2006-01-02"

// formatValue returns the cell for a measure's value; "" for no value. A
// value whose case does not match the measure's type is an error: writing
// it in another form would change what it means.
func formatValue(m *exchangev1.Measure, v *exchangev1.Value) (string, error) {
	if v.GetKind() == nil {
		return "", nil
	}
	switch m.GetType() {
	case exchangev1.MeasureType_MEASURE_TYPE_INTEGER:
		if x, ok := v.GetKind().(*exchangev1.Value_IntValue); ok {
			return strconv.FormatInt(x.IntValue, 10), nil
		}
	case exchangev1.MeasureType_MEASURE_TYPE_DECIMAL:
		if x, ok := v.GetKind().(*exchangev1.Value_DecimalValue); ok {
			return strconv.FormatFloat(x.DecimalValue, 'g', -1, 64), nil
		}
	case exchangev1.MeasureType_MEASURE_TYPE_TEXT:
		if x, ok := v.GetKind().(*exchangev1.Value_TextValue); ok {
			return x.TextValue, nil
		}
	case exchangev1.MeasureType_MEASURE_TYPE_DATE:
		if x, ok := v.GetKind().(*exchangev1.Value_DateValue); ok {
			d := x.DateValue
			return fmt.Sprintf("%04d-%02d-%02d", d.GetYear(), d.GetMonth(), d.GetDay()), nil
		}
	case exchangev1.MeasureType_MEASURE_TYPE_BOOLEAN:
		if x, ok := v.GetKind().(*exchangev1.Value_BoolValue); ok {
			return strconv.FormatBool(x.BoolValue), nil
		}
	case exchangev1.MeasureType_MEASURE_TYPE_CODE:
		if x, ok := v.GetKind().(*exchangev1.Value_CodeValue); ok {
			return x.CodeValue, nil
		}
	default:
		return "", fmt.Errorf("the measure has no type")
	}
	return "", fmt.Errorf("the value is %s, the measure is %s", kindName(v), typeName(m.GetType()))
}

// parseValue converts a non-empty cell to a value of the measure's type.
// Text is taken as is; other cells are trimmed of surrounding spaces.
func parseValue(m *exchangev1.Measure, cell string) (*exchangev1.Value, error) {
	if m.GetType() == exchangev1.MeasureType_MEASURE_TYPE_TEXT {
		return &exchangev1.Value{Kind: &exchangev1.Value_TextValue{TextValue: cell}}, nil
	}
	s := strings.TrimSpace(cell)
	switch m.GetType() {
	case exchangev1.MeasureType_MEASURE_TYPE_INTEGER:
		n, err := strconv.ParseInt(s, 10, 64)
		if errors.Is(err, strconv.ErrRange) {
			return nil, fmt.Errorf("%q is out of range for an integer", cell)
		}
		if err != nil {
			return nil, fmt.Errorf("%q is not an integer", cell)
		}
		return &exchangev1.Value{Kind: &exchangev1.Value_IntValue{IntValue: n}}, nil
	case exchangev1.MeasureType_MEASURE_TYPE_DECIMAL:
		x, err := strconv.ParseFloat(s, 64)
		if errors.Is(err, strconv.ErrRange) {
			return nil, fmt.Errorf("%q is out of range for a decimal number", cell)
		}
		if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, fmt.Errorf("%q is not a decimal number", cell)
		}
		return &exchangev1.Value{Kind: &exchangev1.Value_DecimalValue{DecimalValue: x}}, nil
	case exchangev1.MeasureType_MEASURE_TYPE_DATE:
		t, err := time.Parse(dateLayout, s)
		if err != nil {
			return nil, fmt.Errorf("%q is not a date (YYYY-MM-DD)", cell)
		}
		return &exchangev1.Value{Kind: &exchangev1.Value_DateValue{DateValue: &exchangev1.CalendarDate{
			Year: int32(t.Year()), Month: int32(t.Month()), Day: int32(t.Day()),
		}}}, nil
	case exchangev1.MeasureType_MEASURE_TYPE_BOOLEAN:
		b, err := parseBool(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not a boolean (true/false, yes/no, 1/0)", cell)
		}
		return &exchangev1.Value{Kind: &exchangev1.Value_BoolValue{BoolValue: b}}, nil
	case exchangev1.MeasureType_MEASURE_TYPE_CODE:
		return &exchangev1.Value{Kind: &exchangev1.Value_CodeValue{CodeValue: s}}, nil
	}
	return nil, fmt.Errorf("the measure has no type")
}

var errNotBool = errors.New("not a boolean")

// parseBool accepts true/false, yes/no and 1/0 in any case.
func parseBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "true", "yes", "1":
		return true, nil
	case "false", "no", "0":
		return false, nil
	}
	return false, errNotBool
}

func typeName(t exchangev1.MeasureType) string {
	switch t {
	case exchangev1.MeasureType_MEASURE_TYPE_INTEGER:
		return "integer"
	case exchangev1.MeasureType_MEASURE_TYPE_DECIMAL:
		return "decimal"
	case exchangev1.MeasureType_MEASURE_TYPE_TEXT:
		return "text"
	case exchangev1.MeasureType_MEASURE_TYPE_DATE:
		return "date"
	case exchangev1.MeasureType_MEASURE_TYPE_BOOLEAN:
		return "boolean"
	case exchangev1.MeasureType_MEASURE_TYPE_CODE:
		return "code"
	}
	return "untyped"
}

func kindName(v *exchangev1.Value) string {
	switch v.GetKind().(type) {
	case *exchangev1.Value_IntValue:
		return "integer"
	case *exchangev1.Value_DecimalValue:
		return "decimal"
	case *exchangev1.Value_TextValue:
		return "text"
	case *exchangev1.Value_DateValue:
		return "date"
	case *exchangev1.Value_BoolValue:
		return "boolean"
	case *exchangev1.Value_CodeValue:
		return "code"
	}
	return "empty"
}
