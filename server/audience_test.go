package server

import (
	"testing"

	"github.com/alltogether/exchange/pki"
	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

func TestReaderSees(t *testing.T) {
	ilo := Reader{Caller: Caller{Identity: pki.Agency("ilo")}, Groups: map[string]bool{"workingGroups/un-wg": true}}
	sec := Reader{Caller: Caller{Identity: pki.Secretariat()}, Groups: map[string]bool{}}
	cases := []struct {
		name     string
		reader   Reader
		owner    string
		audience *exchangev1.Audience
		want     bool
	}{
		{"owner, empty audience", ilo, "agencies/ilo", nil, true},
		{"other, empty audience", ilo, "agencies/iom", &exchangev1.Audience{}, false},
		{"all members", ilo, "agencies/iom", &exchangev1.Audience{AllMembers: true}, true},
		{"named agency", ilo, "agencies/iom", &exchangev1.Audience{Agencies: []string{"agencies/unicef", "agencies/ilo"}}, true},
		{"other named agency", ilo, "agencies/iom", &exchangev1.Audience{Agencies: []string{"agencies/unicef"}}, false},
		{"my working group", ilo, "agencies/iom", &exchangev1.Audience{WorkingGroups: []string{"workingGroups/un-wg"}}, true},
		{"another working group", ilo, "agencies/iom", &exchangev1.Audience{WorkingGroups: []string{"workingGroups/jac"}}, false},
		{"secretariat, all members", sec, "agencies/iom", &exchangev1.Audience{AllMembers: true}, true},
		{"secretariat, named agencies", sec, "agencies/iom", &exchangev1.Audience{Agencies: []string{"agencies/iom"}}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := c.reader.Sees(c.owner, c.audience); got != c.want {
				t.Fatalf("got %v, want %v", got, c.want)
			}
		})
	}
}
