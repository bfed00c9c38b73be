// Package geo is the exchange's read-only directory of locations: the
// countries of the Mekong sub-region and their first-level subdivisions,
// named by ISO 3166-1 alpha-2 and ISO 3166-2 codes. Plans and datasets name
// locations by these codes; the directory service ships this list as data
// embedded in the binary (subdivisions.tsv, one row per subdivision with the
// columns code, country, name, local_name and kind).
//
// # Coverage
//
// The directory holds 172 subdivisions:
//
//   - Cambodia (KH), 25: 24 provinces and the autonomous municipality of
//     Phnom Penh (KH-12); Tboung Khmum (KH-25) is included.
//   - Lao PDR (LA), 18: 17 provinces, including Xaisomboun (LA-XS), and the
//     Vientiane prefecture (LA-VT).
//   - Myanmar (MM), 15: 7 regions, 7 states and the Nay Pyi Taw union
//     territory (MM-18).
//   - Thailand (TH), 78: 76 provinces, the Bangkok metropolitan
//     administration (TH-10) and the special administrative city of Pattaya
//     (TH-S), which ISO 3166-2 lists separately although it lies inside Chon
//     Buri province (TH-20).
//   - Viet Nam (VN), 34: the 28 provinces and 6 centrally-run cities in
//     force since 1 July 2025 (see below).
//   - China (CN), 2: only Yunnan (CN-YN) and Guangxi (CN-GX), the two
//     provincial-level units in the Greater Mekong Subregion. All other
//     Chinese provinces, municipalities, autonomous regions and special
//     administrative regions are deliberately out of scope, so
//     Lookup("CN-GD") reports false even though CN-GD is a valid ISO code.
//
// # Date and sources
//
// The data reflects the administrative divisions in force on 1 July 2025,
// as known when the list was compiled in November 2026. Sources:
//
//   - ISO 3166-2 as published by the ISO 3166 Maintenance Agency on the ISO
//     Online Browsing Platform, read through the English Wikipedia pages
//     ISO 3166-2:KH, ISO 3166-2:LA, ISO 3166-2:MM, ISO 3166-2:TH,
//     ISO 3166-2:VN and ISO 3166-2:CN, and cross-checked code by code against
//     the Debian iso-codes package (iso_3166-2.json), last against version
//     4.20.1 (the constant Edition), whose names all agree with LocalName
//     (or Name where LocalName is empty) except VN-26 (see below). iso-codes
//     4.19 renamed KH-19 from Stoĕng Trêng to Stueng Traeng.
//   - ISO 3166-1 for the country codes and English short names.
//   - For Viet Nam's 2025 reorganisation: the list of the 34 provincial-level
//     units approved by the National Assembly on 12 June 2025 and effective
//     1 July 2025 (names as proposed in Party Central Committee Resolution
//     60-NQ/TW of 12 April 2025), as reported by Viet Nam News, Quân đội
//     nhân dân and VietNamNet.
//
// # Names
//
// Name is an English name in plain ASCII; LocalName is the romanised name
// in the national language as ISO 3166-2 spells it (with its diacritics),
// and is empty where it would equal Name.
//
//   - Cambodia and Lao PDR: ISO 3166-2 lists, besides the national
//     romanisation, a "local variant" that is the spelling the national
//     authorities use in English (Battambang, Siem Reap, Luangprabang,
//     Champasack); Name is that variant where ISO gives one, otherwise the
//     ISO name. LocalName is the ISO national romanisation (Baat Dambang,
//     Louangphabang). Exceptions: KH-18 is named Preah Sihanouk, the
//     province, rather than ISO's variant Sihanoukville, which is its town;
//     KH-25 is named Tboung Khmum, the government's spelling, with ISO's
//     Tbong Khmum as LocalName; LA-VT and LA-VI, which ISO names alike
//     (Viangchan, variant Vientiane), are named Vientiane Prefecture and
//     Vientiane Province so that they can be told apart.
//   - Thailand and Myanmar: Name is the ISO name, which is already the
//     official English romanisation, and LocalName is empty, except TH-10
//     Bangkok (Krung Thep Maha Nakhon) and TH-S Pattaya (Phatthaya).
//   - China: Name is the pinyin name without its generic term (Yunnan,
//     Guangxi) and LocalName is the ISO name (Yunnan Sheng, Guangxi Zhuangzu
//     Zizhiqu).
//   - Viet Nam: Name is the Vietnamese name without diacritics (Ha Noi, Dak
//     Lak), except Ho Chi Minh City; LocalName is the Vietnamese name with
//     diacritics as ISO spells it (Hà Nội, Đắk Lắk, Hồ Chí Minh).
//
// Kind is ISO's subdivision category in lower case.
//
// # Viet Nam
//
// Viet Nam reorganised its provincial level on 1 July 2025, from 63 units
// (58 provinces and 5 centrally-run cities) to 34 (28 provinces and 6
// centrally-run cities). No ISO 3166-2 change for Viet Nam reflecting this
// was found in the sources above, which still list the 63 pre-2025 units.
// The directory therefore lists the current 34 units under these
// assumptions:
//
//   - Every merged unit took the name of one of its pre-2025 constituents,
//     and that constituent's ISO 3166-2 code is used for the whole merged
//     unit; the code now covers a larger territory than ISO's definition.
//     For example VN-SG, Ho Chi Minh City, now includes the former Bình
//     Dương (VN-57) and Bà Rịa - Vũng Tàu (VN-43).
//   - The 11 units that were not merged keep their pre-2025 codes.
//   - Huế (VN-26): ISO lists VN-26 as the province of Thừa Thiên-Huế. The
//     same territory became the centrally-run city of Huế on 1 January 2025
//     and was not merged, so VN-26 is kept with the new name and the kind
//     "municipality" (ISO's category for Viet Nam's centrally-run cities).
//   - The 6 centrally-run cities (Ha Noi, Hai Phong, Hue, Da Nang, Ho Chi
//     Minh City, Can Tho) have kind "municipality"; the rest "province".
//
// The 29 codes of the absorbed units are not in the directory, and Lookup
// reports false for them; Absorbed names the unit that absorbed each (the
// data file absorbed.tsv), so that the exchange can say so when it refuses
// one and importers can map data that still uses them. The mapping, from
// National Assembly Resolution 202/2025/QH15 of 12 June 2025 as reported
// by Viet Nam News (4 July 2025), Quân đội nhân dân and vietnam.travel:
//
//	VN-03 Hà Giang                     -> VN-07 Tuyên Quang
//	VN-06 Yên Bái                      -> VN-02 Lào Cai
//	VN-53 Bắc Kạn                      -> VN-69 Thái Nguyên
//	VN-70 Vĩnh Phúc, VN-14 Hòa Bình    -> VN-68 Phú Thọ
//	VN-54 Bắc Giang                    -> VN-56 Bắc Ninh
//	VN-20 Thái Bình                    -> VN-66 Hưng Yên
//	VN-61 Hải Dương                    -> VN-HP Hải Phòng
//	VN-63 Hà Nam, VN-67 Nam Định       -> VN-18 Ninh Bình
//	VN-24 Quảng Bình                   -> VN-25 Quảng Trị
//	VN-27 Quảng Nam                    -> VN-DN Đà Nẵng
//	VN-28 Kon Tum                      -> VN-29 Quảng Ngãi
//	VN-31 Bình Định                    -> VN-30 Gia Lai
//	VN-36 Ninh Thuận                   -> VN-34 Khánh Hòa
//	VN-72 Đắk Nông, VN-40 Bình Thuận   -> VN-35 Lâm Đồng
//	VN-32 Phú Yên                      -> VN-33 Đắk Lắk
//	VN-57 Bình Dương, VN-43 Bà Rịa - Vũng Tàu -> VN-SG Hồ Chí Minh
//	VN-58 Bình Phước                   -> VN-39 Đồng Nai
//	VN-41 Long An                      -> VN-37 Tây Ninh
//	VN-52 Sóc Trăng, VN-73 Hậu Giang   -> VN-CT Cần Thơ
//	VN-50 Bến Tre, VN-51 Trà Vinh      -> VN-49 Vĩnh Long
//	VN-46 Tiền Giang                   -> VN-45 Đồng Tháp
//	VN-55 Bạc Liêu                     -> VN-59 Cà Mau
//	VN-47 Kiên Giang                   -> VN-44 An Giang
//
// When ISO 3166-2 publishes new codes for Viet Nam, the data file should be
// updated to them; codes assigned by ISO take precedence over these
// assumptions.
//
// # Behaviour
//
// Codes are matched exactly and are upper case. Lists are sorted by code in
// byte order. Every function returns a fresh copy, so callers cannot change
// the directory.
package geo
