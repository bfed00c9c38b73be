package geo

import (
	"strings"
	"testing"
)

// Issue 19, item 6a: the 29 codes of the units Viet Nam's 2025
// reorganisation absorbed answer with the unit that absorbed each. The
// mapping is that of National Assembly Resolution 202/2025/QH15, as
// reported by Viet Nam News (4 July 2025), Quân đội nhân dân and
// vietnam.travel; the codes and names of the absorbed units are ISO
// 3166-2's (Debian iso-codes 4.20.1).
func TestAbsorbedCodesNameTheUnitThatAbsorbedThem(t *testing.T) {
	want := map[string]string{
		"VN-03": "VN-07", "VN-06": "VN-02", "VN-53": "VN-69", "VN-70": "VN-68", "VN-14": "VN-68",
		"VN-54": "VN-56", "VN-20": "VN-66", "VN-61": "VN-HP", "VN-63": "VN-18", "VN-67": "VN-18",
		"VN-24": "VN-25", "VN-27": "VN-DN", "VN-28": "VN-29", "VN-31": "VN-30", "VN-36": "VN-34",
		"VN-72": "VN-35", "VN-40": "VN-35", "VN-32": "VN-33", "VN-57": "VN-SG", "VN-43": "VN-SG",
		"VN-58": "VN-39", "VN-41": "VN-37", "VN-52": "VN-CT", "VN-73": "VN-CT", "VN-50": "VN-49",
		"VN-51": "VN-49", "VN-46": "VN-45", "VN-55": "VN-59", "VN-47": "VN-44",
	}
	if len(absorbed) != len(want) {
		t.Errorf("%d absorbed codes, want %d", len(absorbed), len(want))
	}
	for code, into := range want {
		a, ok := Absorbed(code)
		if !ok || a.Into.Code != into || a.Since != "2025-07-01" || !strings.Contains(a.By, "202/2025/QH15") {
			t.Errorf("Absorbed(%s) = %+v, %v; want into %s", code, a, ok, into)
		}
		if _, ok := Lookup(code); ok {
			t.Errorf("%s is absorbed and still in the directory", code)
		}
	}
	// 63 units before, 34 after: the absorbed and the directory's units
	// of Viet Nam are the 63 codes ISO 3166-2 lists.
	if n := len(InCountry("VN")) + len(absorbed); n != 63 {
		t.Errorf("%d codes of Viet Nam in all, want 63", n)
	}
	a, _ := Absorbed("VN-57")
	if got := a.String(); got != "VN-57 Binh Duong was absorbed into VN-SG Ho Chi Minh City on 2025-07-01 (National Assembly Resolution 202/2025/QH15)" {
		t.Errorf("VN-57: %q", got)
	}
	if a, _ := Absorbed("VN-03"); a.Name != "Ha Giang" || a.LocalName != "Hà Giang" || a.Into.Name != "Tuyen Quang" {
		t.Errorf("VN-03: %+v", a)
	}
	for _, code := range []string{"VN-SG", "KH-12", "VN-99", "vn-57", ""} {
		if a, ok := Absorbed(code); ok {
			t.Errorf("Absorbed(%q) = %+v", code, a)
		}
	}
}

func TestParseAbsorbedRefusesBadData(t *testing.T) {
	const header = "code\tname\tlocal_name\tinto\n"
	for _, text := range []string{
		"code\tname\n",
		header + "VN-57\tBinh Duong\tBình Dương\n",
		header + "VN-57\tBinh Duong\tBình Dương\tVN-57\n", // into not in the directory
		header + "VN-SG\tHo Chi Minh\t\tVN-SG\n",          // still in the directory
		header + "KH-99\tX\t\tVN-SG\n",
		header + "VN-57\t\t\tVN-SG\n",
		header + "VN-57\tBinh Duong\t\tVN-SG\nVN-57\tBinh Duong\t\tVN-SG\n",
	} {
		if _, err := parseAbsorbed(text); err == nil {
			t.Errorf("accepted %q", text)
		}
	}
}

// Issue 19, item 6b: names follow the current iso-codes. iso-codes 4.19
// renamed KH-19 from Stoĕng Trêng to Stueng Traeng; the other names of
// the directory were compared with iso-codes 4.20.1 and agree, except
// VN-26, Huế, renamed with its change of status (see the package
// documentation).
func TestNamesOfTheCurrentISOCodes(t *testing.T) {
	for code, want := range map[string]string{
		"KH-19": "Stueng Traeng",
		"KH-25": "Tbong Khmum",
		"KH-17": "Siem Reab",
		"LA-XS": "Xaisômboun",
		"MM-18": "",
	} {
		if s, ok := Lookup(code); !ok || s.LocalName != want {
			t.Errorf("%s: local name %q, want %q", code, s.LocalName, want)
		}
	}
}

func TestEditionIsSaid(t *testing.T) {
	if !strings.Contains(Edition, "iso-codes 4.20.1") || !strings.Contains(VietNamReorganisation, "202/2025/QH15") || !strings.Contains(VietNamReorganisation, "34") {
		t.Errorf("Edition %q, VietNamReorganisation %q", Edition, VietNamReorganisation)
	}
}
