#!/usr/bin/env bash
# The newcomer's tour of the exchange (`make demo`).
#
# It starts a throw-away exchange, fills its directory with the agencies of
# the seed document ("All together now!", ILO-TICW, 2002), and then walks
# through the three things the exchange is for:
#
#   1. referring people between agencies, with consent and need-to-know;
#   2. collecting data jointly into one shared dataset;
#   3. sharing plans at inception stage, to see overlaps and gaps early.
#
# Everything goes through the public CLI, exchangectl, exactly as an agency
# would type it: read this file next to its output. The agencies are real
# names from the seed document; every person, referral, figure and plan is
# invented for the tour.
#
# Usage:   demo/tour.sh                  (builds the binaries with go)
#          EXCHANGE_BIN=bin demo/tour.sh (uses exchanged and exchangectl from there)
#
# It exits non-zero as soon as a command fails that was not expected to.
set -eEuo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
started=$SECONDS

# Only what this script sets may reach the binaries: a stray EXCHANGE_CERT
# or EXCHANGE_DATA_DIR in your shell would otherwise change who we are or
# where the server keeps its data.
for var in $(compgen -e); do
	case $var in
	EXCHANGE_BIN) ;;
	EXCHANGE_*) unset "$var" ;;
	esac
done

# ---------------------------------------------------------------------------
# Helpers: headers, narration, and running exchangectl as someone.
# ---------------------------------------------------------------------------

section() { printf '\n==== %s ====\n' "$*"; }
say() { printf '\n# %s\n' "$*"; }
# On an unexpected failure, say where (the line of this file, even when the
# failing command ran inside one of the helpers) before set -e stops the tour.
on_error() {
	echo "tour: FAILED with exit code $1 at demo/tour.sh line ${BASH_LINENO[${#BASH_LINENO[@]} - 2]}: $2" >&2
}
trap 'on_error $? "$BASH_COMMAND"' ERR

# show_cmd WHO ARGS...: print the command line as a user would type it, on
# the tour's own output (file descriptor 3), even when the command's output
# goes to a file.
exec 3>&1
show_cmd() {
	local who=$1 line="" a
	shift
	for a in "$@"; do
		if [[ $a =~ [^A-Za-z0-9_./:=,+@-] || -z $a ]]; then line+=" \"$a\""; else line+=" $a"; fi
	done
	printf '[%s] $ exchangectl%s\n' "$who" "$line" >&3
}

# as WHO ARGS...: run exchangectl with WHO's certificate. WHO is
# "secretariat" (the certificate exchanged made on first start) or an agency
# id (the files 'certs issue' wrote for it).
as() {
	local who=$1
	shift
	show_cmd "$who" "$@"
	run_as "$who" "$@"
}

# quietly WHO ARGS...: like as, but keeps the output to itself (the command
# is still printed, and its output shown if it fails).
quietly() {
	local who=$1 rc=0
	shift
	show_cmd "$who" "$@"
	run_as "$who" "$@" >"$tmp/last.out" 2>&1 || rc=$?
	if [ "$rc" -ne 0 ]; then cat "$tmp/last.out"; fi
	return "$rc"
}

# expect_exit CODE WHO ARGS...: run a command that must fail with exit code
# CODE (see 'exchangectl --help'); any other outcome stops the tour.
expect_exit() {
	local want=$1 who=$2 rc=0
	shift 2
	show_cmd "$who" "$@"
	run_as "$who" "$@" || rc=$?
	if [ "$rc" -ne "$want" ]; then
		echo "tour: expected exit code $want, got $rc" >&2
		return 1
	fi
	echo "(exit code $rc, as expected)"
}

run_as() {
	local who=$1
	shift
	if [ "$who" = secretariat ]; then
		EXCHANGE_CERT=$pki/secretariat.crt EXCHANGE_KEY=$pki/secretariat.key EXCHANGE_CA=$pki/ca.crt "$ctl" "$@"
	else
		EXCHANGE_CERT=$certs/$who/$who.crt EXCHANGE_KEY=$certs/$who/$who.key EXCHANGE_CA=$certs/$who/ca.crt "$ctl" "$@"
	fi
}

# ---------------------------------------------------------------------------
section "1. Start a throw-away exchange"
# ---------------------------------------------------------------------------

tmp=$(mktemp -d "${TMPDIR:-/tmp}/exchange-tour.XXXXXX")
server_pid=""
ui_pid=""

# Whatever happens, stop the server gracefully (SIGTERM: calls in flight
# finish, the database closes cleanly) and remove the temporary directory.
stop_server() {
	local rc=$? i
	trap - ERR
	# The dashboard first, then the server. A background job of a script
	# ignores SIGINT, so the dashboard gets SIGTERM.
	if [ -n "$ui_pid" ] && kill -0 "$ui_pid" 2>/dev/null; then
		kill -TERM "$ui_pid" 2>/dev/null || true
		wait "$ui_pid" 2>/dev/null || true
	fi
	if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
		kill -TERM "$server_pid" 2>/dev/null || true
		for i in $(seq 100); do
			kill -0 "$server_pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$server_pid" 2>/dev/null; then
			echo "tour: exchanged did not stop within 10s of SIGTERM; killing it" >&2
			kill -KILL "$server_pid" 2>/dev/null || true
			[ "$rc" -ne 0 ] || rc=1
		fi
		local src=0
		wait "$server_pid" 2>/dev/null || src=$?
		if [ "$src" -ne 0 ] && [ "$rc" -eq 0 ]; then
			echo "tour: exchanged exited with status $src after SIGTERM" >&2
			cat "$tmp/exchanged.err" >&2 || true
			rc=1
		fi
	fi
	cd /
	rm -rf "$tmp"
	exit "$rc"
}
trap stop_server EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ -n "${EXCHANGE_BIN:-}" ]; then
	bin=$(cd "$EXCHANGE_BIN" && pwd)
	echo "Using the binaries in $bin"
else
	bin=$tmp/bin
	mkdir -p "$bin"
	echo "Building exchanged and exchangectl (go build -o $bin/ ./cmd/...)"
	(cd "$root" && GOTOOLCHAIN=${GOTOOLCHAIN:-go1.27.3} go build -o "$bin/" ./cmd/...)
fi
ctl=$bin/exchangectl

# The server runs in its own directory: on first start it makes a
# development CA, a server certificate and the secretariat's client
# certificate in exchange-data/pki, and its database in exchange-data.
# Port 0 lets the system pick a free port; the server prints the one it got.
srvdir=$tmp/server
certs=$tmp/certs
work=$tmp/work
mkdir -p "$srvdir" "$certs" "$work"
: >"$tmp/exchanged.out"
cd "$srvdir"
"$bin/exchanged" --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 \
	</dev/null >"$tmp/exchanged.out" 2>"$tmp/exchanged.err" 3>&- &
server_pid=$!
cd "$work"

addr=""
for _ in $(seq 200); do
	addr=$(sed -n 's/^exchanged listening on \([^ ]*\).*/\1/p' "$tmp/exchanged.out")
	[ -n "$addr" ] && break
	if ! kill -0 "$server_pid" 2>/dev/null; then
		echo "tour: exchanged exited before listening:" >&2
		cat "$tmp/exchanged.out" "$tmp/exchanged.err" >&2
		exit 1
	fi
	sleep 0.1
done
if [ -z "$addr" ]; then
	echo "tour: exchanged printed no 'exchanged listening on ADDR' line within 20s" >&2
	exit 1
fi
export EXCHANGE_SERVER=$addr
pki=$srvdir/exchange-data/pki
head -n 2 "$tmp/exchanged.out"

# ---------------------------------------------------------------------------
section "2. The secretariat builds the directory"
# ---------------------------------------------------------------------------

say "The agencies the seed document names, each with its niche in the division of labour it records."
# agency ID KIND "FULL NAME" SHORT COUNTRIES NICHES COVERAGE [PARENT]
agency() {
	local id=$1 kind=$2 name=$3 short=$4 countries=$5 niches=$6 coverage=$7 parent=${8:-}
	local args=(agencies create "$id" --name "$name" --kind "$kind" --country "$countries" --niche "$niches" --coverage "$coverage")
	[ "$short" = - ] || args+=(--short-name "$short")
	[ -z "$parent" ] || args+=(--parent "$parent")
	quietly secretariat "${args[@]}"
}
agency ilo un-agency "ILO-IPEC Mekong Sub-Regional Project to Combat Trafficking in Children and Women (TICW)" ILO-TICW \
	KH,LA,TH,VN,CN prevention,livelihoods-and-skills,migration,research-and-data KH-1,KH-14,LA-KH,LA-SV,LA-CH,TH-57,TH-56,VN-44,CN-YN
agency iom un-agency "International Organization for Migration" IOM \
	KH,LA,MM,TH,VN,CN return-and-reintegration,rescue,family-tracing,migration KH-1,KH-12,KH-20,LA-VT,LA-SV,LA-CH,TH-10,TH-27,TH-63,MM-06,VN-HN,CN-YN
agency unicef un-agency "United Nations Children's Fund" UNICEF \
	KH,LA,MM,TH,VN,CN child-protection,prevention KH-1,KH-20,KH-12,LA-KH,LA-SV,LA-VT,VN-44
agency un-iap un-agency "United Nations Inter-Agency Project on Human Trafficking in the Greater Mekong Sub-region" UN-IAP \
	KH,LA,MM,TH,VN,CN coordination,research-and-data KH,LA-BK,LA-XA,MM-06,TH-10,VN-HN,CN-YN
agency escap un-agency "UN ESCAP, Human Resources Development Section" ESCAP-HRD \
	KH,LA,TH psychosocial-counselling KH-12,LA-VT,TH-10
agency save-the-children international-ngo "Save the Children UK" SC-UK \
	KH,LA,MM,TH,VN,CN child-protection,family-tracing,advocacy KH-2,KH-20,MM-17,TH-63,VN-44,CN-YN
agency world-vision international-ngo "World Vision International, Asia and Pacific" WVI \
	KH,LA,MM,TH,VN,CN prevention,psychosocial-counselling,shelter KH-12,KH-2,LA-SV,TH-57,MM-17,VN-HN

say "One national NGO per country..."
agency afesip national-ngo "AFESIP Cambodia (Acting for Women in Distressing Situations)" AFESIP \
	KH shelter,rescue,psychosocial-counselling,livelihoods-and-skills KH-12,KH-2,KH-1
agency lwu national-ngo "Lao Women's Union" LWU \
	LA prevention,shelter,family-tracing,advocacy LA-VT,LA-KH,LA-SV,LA-CH
agency mmcwa national-ngo "Myanmar Maternal and Child Welfare Association" MMCWA \
	MM child-protection,health,family-tracing MM-06,MM-17,MM-13
agency depdc national-ngo "Development and Education Programme for Daughters and Communities" DEPDC \
	TH prevention,non-formal-education,shelter TH-57
agency csaga national-ngo "Center for Studies and Applied Sciences in Gender, Family, Women and Adolescents" CSAGA \
	VN psychosocial-counselling,legal-aid,advocacy VN-HN
agency ynwf national-ngo "Yunnan Provincial Women's Federation" - \
	CN prevention,return-and-reintegration,family-tracing CN-YN

say "...and one national project office per country (ILO-TICW's five; UN-IAP's in Myanmar)."
agency ticw-kh national-project-office "ILO-TICW National Project Office, Cambodia" - KH prevention KH-1,KH-14 ilo
agency ticw-la national-project-office "ILO-TICW National Project Office, Lao PDR" - LA prevention LA-KH,LA-SV,LA-CH ilo
agency ticw-th national-project-office "ILO-TICW National Project Office, Thailand" - TH prevention TH-57,TH-56 ilo
agency ticw-vn national-project-office "ILO-TICW National Project Office, Viet Nam" - VN prevention VN-44 ilo
agency ticw-cn national-project-office "ILO-TICW Project Office, Yunnan Province (China)" - CN prevention CN-YN ilo
agency uniap-mm national-project-office "UN-IAP National Project Office, Myanmar" - MM coordination MM-06,MM-17 un-iap

as secretariat agencies list

say "Who works on prevention in Khammuane (LA-KH)? ILO-TICW (with its Lao office) and UNICEF both do: the overlap the seed document warns about."
as secretariat agencies list --subdivision LA-KH --niche prevention

say "Each agency gets a client certificate. exchangectl makes the key here and sends only a signing request."
quietly secretariat certs issue --agency ilo --out-dir "$certs/ilo"
ls -l "$certs/ilo" | awk 'NR > 1 { print $1, $NF }'
others="iom unicef un-iap escap save-the-children world-vision afesip lwu mmcwa depdc csaga ynwf
	ticw-kh ticw-la ticw-th ticw-vn ticw-cn uniap-mm"
for id in $others; do
	run_as secretariat certs issue --agency "$id" --out-dir "$certs/$id" >"$tmp/last.out" 2>&1 ||
		{ cat "$tmp/last.out"; exit 1; }
done
echo "(and the same for the other $(echo $others | wc -w | tr -d ' ') agencies)"
say "Each agency makes its own encryption key pair and registers only the public key: the exchange refuses a person's identifying details in clear, so the sending agency's exchangectl seals them to the receiver and itself."
as ilo keys create
for id in $others; do
	run_as "$id" keys create >"$tmp/last.out" 2>&1 || { cat "$tmp/last.out"; exit 1; }
done
echo "(and the same for the other agencies)"
say "From now on each agency talks as itself: its certificate is its only identity."
as ilo agencies get ilo

say "Focal points: whom to contact at an agency, about what, today."
quietly secretariat focal-points create --agency iom --name "Dara C." --topic referrals --role "Return and reintegration officer" --email dara.c@iom.example.org
quietly secretariat focal-points create --agency ilo --name "Khamla S." --topic plans --role "National project coordinator, Lao PDR" --email khamla.s@ilo.example.org
quietly secretariat focal-points create --agency un-iap --name "Mai T." --topic data --role "Information officer" --email mai.t@un-iap.example.org
as unicef focal-points current --agency iom --topic referrals

say "Working groups: the UN working group on trafficking (UN-IAP its secretariat, NGOs as observers), SURAC, the RWG-CL."
quietly secretariat working-groups create unwg --name "UN Inter-Agency Working Group on Trafficking" --kind working-group \
	--secretariat un-iap --member ilo,iom,unicef,escap --observer save-the-children,world-vision \
	--description "Bangkok-based UN agencies sharing progress reports and plans on trafficking in the Mekong sub-region"
quietly secretariat working-groups create surac --name "Sub-regional Advisory Committee (ILO-TICW and UN-IAP)" --kind committee \
	--secretariat ilo --member un-iap
quietly secretariat working-groups create rwg-cl --name "Regional Working Group on Child Labour" --kind network \
	--member ilo,unicef,save-the-children,world-vision
as secretariat working-groups get unwg

# ---------------------------------------------------------------------------
section "3. Referrals: people move between agencies, with consent"
# ---------------------------------------------------------------------------

say "IOM in Poipet needs shelter for a girl returned from Thailand: who offers it in Banteay Meanchey (KH-1)?"
as iom referrals suggest --niche shelter --province KH-1

say "IOM's case system exports referrals as JSON Lines (demo/referrals.jsonl) and pushes them; exchangectl seals each line's name, guardian contact, birth year and case notes with IOM's key ring before it leaves."
as iom referrals push -f "$here/referrals.jsonl" >"$tmp/push.out" 2>&1
cat "$tmp/push.out"
say "Pushing the same file again sends nothing twice: every line comes back as a duplicate."
quietly iom referrals push -f "$here/referrals.jsonl"
grep 'records from' "$tmp/last.out"

# ref REQUEST-ID: the referral id the push returned for that line.
ref() {
	local id
	id=$(awk -v r="$1" '$2 == r && $4 ~ /^referrals\// { sub(/^referrals\//, "", $4); print $4 }' "$tmp/push.out")
	[ -n "$id" ] || { echo "tour: no referral for $1 in the push output" >&2; return 1; }
	echo "$id"
}
shelter=$(ref iom-kh-2026-1041)
counselling=$(ref iom-kh-2026-1042)
education=$(ref iom-th-2026-0311)
protection=$(ref iom-kh-2026-1043)
hanoi=$(ref iom-vn-2026-0207)

say "AFESIP finds the shelter referral in its inbox (summaries only, no names) and takes it through to the end."
as afesip referrals inbox
quietly afesip referrals acknowledge "$shelter"
quietly afesip referrals accept "$shelter"
quietly afesip referrals start "$shelter"
quietly afesip referrals complete "$shelter" --successful \
	--reason "six weeks of shelter, medical check-up and counselling; returned to her family with follow-up" \
	--delivered shelter,psychosocial-counselling,health

say "World Vision accepts the counselling referral and starts; it stays in progress."
quietly world-vision referrals acknowledge "$counselling"
quietly world-vision referrals accept "$counselling"
quietly world-vision referrals start "$counselling"

say "DEPDC works in Chiang Rai, not in Tak: it rejects the referral as outside its area."
quietly depdc referrals acknowledge "$education"
as depdc referrals reject "$education" --reason outside-area --details "we work in Chiang Rai only; try an agency in Tak"

say "UNICEF accepts the child protection case and forwards the family tracing to Save the Children, with the guardian's consent."
quietly unicef referrals acknowledge "$protection"
quietly unicef referrals accept "$protection"
as unicef referrals forward "$protection" --to save-the-children --niche family-tracing \
	--need "trace the family in Svay Rieng and assess a safe return home" --consent-given-by guardian \
	--request-id unicef-kh-2026-0088 >"$tmp/forward.out"
# The forward is a new referral, from UNICEF, linked to IOM's.
grep -E '^(Name|From|To|Service|Consent covers|Forwarded from):' "$tmp/forward.out"
forwarded=$(sed -n 's/^Name: *referrals\///p' "$tmp/forward.out")
[ -n "$forwarded" ] || { echo "tour: 'referrals forward' printed no referral name" >&2; exit 1; }
quietly save-the-children referrals acknowledge "$forwarded"
as save-the-children referrals inbox

say "In Ha Noi the young woman withdraws her consent: IOM records it, and CSAGA no longer sees her details."
quietly csaga referrals acknowledge "$hanoi"
quietly iom referrals revoke-consent "$hanoi" --reason "withdrawn by the person"
as csaga referrals show "$hanoi"

say "Need-to-know: an agency that is not party to a referral gets NOT_FOUND (exit code 3), as for an id that does not exist."
expect_exit 3 ilo referrals show "$shelter"

say "IOM's outbox: where each of its referrals stands."
as iom referrals outbox
say "The full record of the completed one, as the sender sees it (this read is audited)."
as iom referrals show "$shelter"

# ---------------------------------------------------------------------------
section "4. Joint data collection: one dataset, three contributors"
# ---------------------------------------------------------------------------

say "ILO-TICW defines the dataset (demo/dataset.yaml): province x month x sex x age group -> returned, assisted, main service."
quietly ilo datasets create -f "$here/dataset.yaml"
as ilo datasets list

say "IOM and AFESIP push their October rows from CSV (demo/rows/). The dataset is named under its owner, agencies/ilo/datasets/returns-kh: ILO calls it returns-kh, the others ilo/returns-kh."
as iom datasets push ilo/returns-kh -f "$here/rows/iom.csv"
as afesip datasets push ilo/returns-kh -f "$here/rows/afesip.csv"
say "World Vision's file has a bad row (age group 18+, not one of the dataset's): it is reported with its line and field, the rest is stored (exit code 6)."
expect_exit 6 world-vision datasets push ilo/returns-kh -f "$here/rows/world-vision.csv"

say "Who has reported for 2026-10, and which of the expected return points is each still missing?"
as ilo datasets completeness returns-kh 2026-10
say "ILO approves (locks) the month: from now on nobody can change its rows..."
as ilo datasets lock returns-kh 2026-10
say "...so AFESIP's late correction is refused (exit code 6)."
expect_exit 6 afesip datasets push ilo/returns-kh -f "$here/rows/afesip-late.csv"

say "Totals by province and sex across all contributors (cells under 5 would be hidden)."
as unicef datasets aggregate ilo/returns-kh --by location,sex --suppress-below 5
say "A national office pulls the rows as HXL-tagged CSV for HDX and spreadsheets (first lines):"
quietly un-iap datasets pull ilo/returns-kh --format hxl --out "$work/returns-kh.csv"
head -n 6 "$work/returns-kh.csv"
echo "... ($(($(wc -l <"$work/returns-kh.csv") - 2)) rows)"

# ---------------------------------------------------------------------------
section "5. Plans at inception stage: overlaps and gaps while they can change"
# ---------------------------------------------------------------------------

say "Six agencies sync their plans from YAML (demo/plans/). 'plans apply' exits 1 when it changed something."
for owner in ilo unicef iom un-iap save-the-children escap; do
	as "$owner" plans apply -f "$here/plans/$owner.yaml" || [ $? -eq 1 ]
done
say "Applying the same file again changes nothing, and exits 0."
as ilo plans apply -f "$here/plans/ilo.yaml"

say "UN-IAP, whose niche is coordination, looks at 2027 in Lao PDR and Cambodia."
core=prevention,child-protection,return-and-reintegration,family-tracing,psychosocial-counselling,coordination
for country in LA KH; do
	as un-iap plans coverage --country "$country" --period 2027 --niche "$core"
	as un-iap plans overlaps --country "$country" --period 2027
	as un-iap plans gaps --country "$country" --period 2027 --niche prevention,return-and-reintegration,psychosocial-counselling
done

say "At the end of the quarter IOM reports to the UN working group. Drafting fills in the figures from what IOM itself may see: its referrals of the quarter by state, service and province, and its plans active in the quarter."
year=$(date -u +%Y)
quarter=$((($(date -u +%-m) - 1) / 3 + 1))
show_cmd iom reports create --fiscal-year "$year" --quarter "$quarter" --title "IOM quarterly progress report" --group unwg
report=$(run_as iom --json reports create --fiscal-year "$year" --quarter "$quarter" --title "IOM quarterly progress report" --group unwg |
	sed -n 's|^  "name": "agencies/\(iom\)/reports/\([0-9a-z]*\)",$|\1/\2|p')
quietly iom reports update "$report" --summary "Five children referred to partners; one safely sheltered in Banteay Meanchey." \
	--challenges "One referral was outside the receiving agency's area." --next-quarter "Agree referral pathways with DEPDC."
as iom reports submit "$report"
say "Members and observers of the working group read the submitted version and comment; an agency outside it gets NOT_FOUND."
as world-vision reports comment "$report" "Thank you: can we align the counselling pathway?"
expect_exit 3 depdc reports get "$report"
say "IOM prints it: one HTML page with its chart (and a PDF, where Chromium is installed)."
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || command -v google-chrome >/dev/null 2>&1 || [ -n "${CHROMIUM:-}" ]; then
	as iom reports export "$report" --html "$work/report.html" --pdf "$work/report.pdf"
	echo "Printed report.html ($(wc -c <"$work/report.html") bytes) and report.pdf ($(wc -c <"$work/report.pdf") bytes)"
else
	as iom reports export "$report" --html "$work/report.html"
	echo "Printed report.html ($(wc -c <"$work/report.html") bytes); no Chromium here for the PDF"
fi

# ---------------------------------------------------------------------------
section "6. What you just saw"
# ---------------------------------------------------------------------------

cat <<EOF
- One exchange, reached only over mutual TLS 1.3: the secretariat created
  $(run_as secretariat --json agencies list | grep -c '"name": *"agencies/') agencies and issued each its certificate; each agency then acted
  as itself, and its certificate was its only identity.
- Referrals: IOM pushed 5 referrals from a JSON Lines file (pushing it again
  duplicated nothing); one was completed, one is in progress, one was
  rejected as outside the area, one was forwarded with fresh consent, and on
  one consent was revoked, hiding the person's details from the receiver.
  Agencies outside a referral cannot even tell that it exists.
- A quarterly report: IOM drafted one for the working group with its
  figures filled in by the exchange, wrote the narrative, submitted it, and
  printed it; an observer commented, an outsider could not see it.
- Joint data: ILO defined a typed dataset, three agencies pushed rows, the bad
  row was reported with its line and field, ILO locked the month against late
  changes, and other members read the totals (small cells hidden) and pulled
  the rows as HXL.
- Plans: six agencies shared inception-stage plans declaratively; the
  coverage matrix, overlaps (ILO-TICW and UNICEF on prevention in the same
  Lao and Cambodian provinces, as the seed document warned) and gaps show
  where to talk before the plans are final.
Next: README.md, 'exchangectl --help', and the files in demo/.
EOF
echo "(tour finished in $((SECONDS - started))s)"

# ---------------------------------------------------------------------------
# The dashboard: the same data in a browser, as IOM sees it.
# ---------------------------------------------------------------------------
show_cmd iom ui --country KH --period 2027
# A simple command, not run_as: $! is then exchangectl itself.
EXCHANGE_CERT=$certs/iom/iom.crt EXCHANGE_KEY=$certs/iom/iom.key EXCHANGE_CA=$certs/iom/ca.crt \
	"$ctl" ui --country KH --period 2027 </dev/null >"$tmp/ui.out" 2>"$tmp/ui.err" 3>&- &
ui_pid=$!
url=""
for _ in $(seq 100); do
	url=$(sed -n 's/^Dashboard: //p' "$tmp/ui.out")
	[ -n "$url" ] && break
	kill -0 "$ui_pid" 2>/dev/null || break
	sleep 0.1
done
if [ -z "$url" ]; then
	echo "tour: exchangectl ui printed no URL:" >&2
	cat "$tmp/ui.err" >&2
	exit 1
fi
echo "Dashboard (as iom): $url"
# 'make demo' sets DEMO_DASHBOARD=wait: the exchange and the dashboard stay
# up, with the tour's data, until Ctrl-C. Otherwise (tests) the tour ends.
if [ "${DEMO_DASHBOARD:-}" = wait ]; then
	echo "Open it in a browser on this machine (coverage, referrals, datasets, directory). Ctrl-C stops the exchange and the dashboard."
	wait "$ui_pid" || true
fi
