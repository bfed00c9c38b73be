package cli

import (
	"testing"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

func date(y, m, d int32) *exchangev1.CalendarDate {
	return &exchangev1.CalendarDate{Year: y, Month: m, Day: d}
}

func TestFocalPointsCreateRequest(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		want      *exchangev1.FocalPoint
		wantUsage bool
	}{
		{
			name: "start defaults to today",
			args: []string{"--agency", "ilo", "--name", "Somchai P.", "--topic", "referrals"},
			want: &exchangev1.FocalPoint{
				DisplayName: "Somchai P.", Topic: "referrals",
				Tenure: &exchangev1.DatePeriod{Start: date(2026, 3, 15)},
			},
		},
		{
			name: "every flag",
			args: []string{"--agency", "agencies/ilo", "--name", "Somchai P.", "--topic", "child-protection",
				"--role", "Officer", "--email", "s@example.org", "--phone", "+855 12 345 678",
				"--start", "2026-01-01", "--end", "2026-12-31"},
			want: &exchangev1.FocalPoint{
				DisplayName: "Somchai P.", Topic: "child-protection", Role: "Officer",
				Email: "s@example.org", Phone: "+855 12 345 678",
				Tenure: &exchangev1.DatePeriod{Start: date(2026, 1, 1), End: date(2026, 12, 31)},
			},
		},
		{name: "no agency", args: []string{"--name", "S", "--topic", "referrals"}, wantUsage: true},
		{name: "no topic", args: []string{"--agency", "ilo", "--name", "S"}, wantUsage: true},
		{name: "bad topic", args: []string{"--agency", "ilo", "--name", "S", "--topic", "Referrals"}, wantUsage: true},
		{name: "bad date", args: []string{"--agency", "ilo", "--name", "S", "--topic", "data", "--start", "15/03/2026"}, wantUsage: true},
		{name: "end before start", args: []string{"--agency", "ilo", "--name", "S", "--topic", "data", "--start", "2026-05-01", "--end", "2026-04-30"}, wantUsage: true},
		{name: "argument", args: []string{"ilo"}, wantUsage: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts, err := parse(t, newFocalPointsCreateCmd, tt.args...)
			if tt.wantUsage {
				if !isUsage(err) {
					t.Fatalf("got %v, want a usage error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			parent, fp, err := opts.request()
			if err != nil {
				t.Fatal(err)
			}
			if parent != "agencies/ilo" {
				t.Errorf("parent %q", parent)
			}
			equalProto(t, fp, tt.want)
		})
	}
}

func TestFocalPointsListRequest(t *testing.T) {
	tests := []struct {
		args      []string
		want      *exchangev1.ListFocalPointsRequest
		wantUsage bool
	}{
		{nil, &exchangev1.ListFocalPointsRequest{Parent: "agencies/-"}, false},
		{[]string{"--agency", "-"}, &exchangev1.ListFocalPointsRequest{Parent: "agencies/-"}, false},
		{[]string{"--agency", "ilo", "--topic", "data"}, &exchangev1.ListFocalPointsRequest{Parent: "agencies/ilo", Topic: "data"}, false},
		{[]string{"--current"}, &exchangev1.ListFocalPointsRequest{Parent: "agencies/-", ActiveOn: date(2026, 3, 15)}, false},
		{[]string{"--on", "2025-12-31"}, &exchangev1.ListFocalPointsRequest{Parent: "agencies/-", ActiveOn: date(2025, 12, 31)}, false},
		{[]string{"--on", "2025-12-31", "--current"}, nil, true},
		{[]string{"--on", "yesterday"}, nil, true},
		{[]string{"--agency", "x"}, nil, true},
	}
	for _, tt := range tests {
		opts, err := parse(t, newFocalPointsListCmd, tt.args...)
		if tt.wantUsage {
			if !isUsage(err) {
				t.Errorf("%v: got %v, want a usage error", tt.args, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%v: %v", tt.args, err)
		}
		req, err := opts.request()
		if err != nil {
			t.Fatal(err)
		}
		equalProto(t, req, tt.want)
	}
}

func TestFocalPointNames(t *testing.T) {
	const full = "agencies/ilo/focalPoints/01jd8x4k2m9q7r3t5v6w8y0z1a"
	for _, arg := range []string{full, "ilo/01jd8x4k2m9q7r3t5v6w8y0z1a", "ilo/focalPoints/01jd8x4k2m9q7r3t5v6w8y0z1a"} {
		opts, err := parse(t, newFocalPointsGetCmd, arg)
		if err != nil {
			t.Fatalf("%s: %v", arg, err)
		}
		if name, _ := focalPointName(opts.Name); name != full {
			t.Errorf("%s: name %q", arg, name)
		}
	}
	for _, bad := range []string{"ilo", "01jd8x4k2m9q7r3t5v6w8y0z1a", "agencies/ilo/focalPoints/short", "agencies/ILO/focalPoints/01jd8x4k2m9q7r3t5v6w8y0z1a"} {
		if _, err := parse(t, newFocalPointsDeleteCmd, bad); !isUsage(err) {
			t.Errorf("%s: got %v, want a usage error", bad, err)
		}
	}
	end, err := parse(t, newFocalPointsEndCmd, full, "--on", "2026-06-30")
	if err != nil || formatDate(end.On) != "2026-06-30" {
		t.Errorf("end --on: %+v, %v", end, err)
	}
	end, err = parse(t, newFocalPointsEndCmd, full)
	if err != nil || end.On != nil {
		t.Errorf("end without --on: %+v, %v (nil On means today)", end, err)
	}
	cur, err := parse(t, newFocalPointsCurrentCmd, "--agency", "iom", "--topic", "referrals")
	if err != nil || cur.Agency != "iom" || cur.Topic != "referrals" {
		t.Errorf("current: %+v, %v", cur, err)
	}
	if _, err := parse(t, newFocalPointsCurrentCmd, "--agency", "iom"); !isUsage(err) {
		t.Errorf("current without --topic: %v", err)
	}
}
