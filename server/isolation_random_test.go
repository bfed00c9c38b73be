package server

// The randomized model check: a seeded random sequence of operations
// (send, acknowledge, forward, revoke consent, erase details; create plans and change
// their audience; change datasets' audience and contributors and write
// rows; add and remove working-group members; suspend and reactivate
// agencies), each made by the caller it belongs to most of the time and by
// someone else the rest, each answer checked against the model; after
// every step, reads by every caller (Get on the resources the step touched
// and a sample of the others, every list and count) are checked against
// the model, and at the end every watch opened at the start is judged
// against the world as it was at each message's revision.
//
// EXCHANGE_MODEL_STEPS sets the number of steps (default
// isoDefaultSteps), EXCHANGE_MODEL_SEED the seed (default
// isoDefaultSeed).

import (
	"fmt"
	"maps"
	"math/rand"
	"os"
	"slices"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/fieldmaskpb"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

const (
	isoDefaultSteps = 100
	isoDefaultSeed  = 20260611
)

func envInt(name string, def int64) int64 {
	if v := os.Getenv(name); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err == nil {
			return n
		}
	}
	return def
}

// isoRandom is the state of one randomized run.
type isoRandom struct {
	w   *isoWorld
	r   *rand.Rand
	tl  *isoTally
	ops map[string]int
	// stepCalls are the calls the steps made (the rest are reads).
	stepCalls int64
}

func TestIsolationRandomModelCheck(t *testing.T) {
	t.Parallel()
	steps := int(envInt("EXCHANGE_MODEL_STEPS", isoDefaultSteps))
	seed := envInt("EXCHANGE_MODEL_SEED", isoDefaultSeed)
	w := buildIsolationWorld(t)
	rr := &isoRandom{w: w, r: rand.New(rand.NewSource(seed)), tl: &isoTally{}, ops: map[string]int{}}
	t.Logf("randomized model check: seed %d, %d steps (EXCHANGE_MODEL_SEED, EXCHANGE_MODEL_STEPS)", seed, steps)

	var live []*isoWatch
	for _, c := range w.callers {
		if w.m.suspended[c] {
			continue
		}
		live = append(live, openWatch(w.conn(c), c, "referrals", "", w.x.store.Revision()))
		live = append(live, openWatch(w.conn(c), c, "plans", "", w.x.store.Revision()))
		for _, d := range w.m.datasetsOf(c) {
			live = append(live, openWatch(w.conn(c), c, "rows", d, w.x.store.Revision()))
		}
	}
	defer func() {
		for _, wt := range live {
			wt.cancel()
		}
	}()

	start := time.Now()
	rr.readAll(nil, true)
	for step := 1; step <= steps; step++ {
		touched := rr.step(step)
		rr.readAll(touched, step%25 == 0 || step == steps)
	}
	elapsed := time.Since(start)

	w.drainAndJudge(rr.tl, live)

	var kinds []string
	for k, n := range rr.ops {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
	}
	sort.Strings(kinds)
	tl := rr.tl
	t.Logf("randomized model check: %d steps in %v (%s)", steps, elapsed.Round(time.Millisecond), joinComma(kinds))
	t.Logf("randomized model check: %d calls checked against the model (%d reads after the steps), %d of them on resources of other agencies, "+
		"%d refusals expected; %d unexpected successes; %d other wrong answers; %d leaks; %d NOT_FOUND byte comparisons (%d differed); %d watch messages judged",
		tl.attempts.Load(), tl.attempts.Load()-rr.stepCalls, tl.cross.Load(), tl.refusals.Load(), tl.unexpected.Load(), tl.wrong.Load(), tl.leaks.Load(),
		tl.twins.Load(), tl.twinsDiffer.Load(), tl.watchEvents.Load())
	t.Logf("randomized model check: world at the end: %d referrals, %d plans, %d datasets, %d suspended agencies",
		len(w.m.referrals), len(w.m.plans), len(w.m.datasets), countTrue(w.m.suspended))
	tl.report(t)
}

func joinComma(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += ", "
		}
		out += x
	}
	return out
}

func countTrue(m map[string]bool) int {
	n := 0
	for _, v := range m {
		if v {
			n++
		}
	}
	return n
}

// pick returns a random element.
func pickOne[T any](r *rand.Rand, s []T) T { return s[r.Intn(len(s))] }

// actor is the caller a step belongs to most of the time, anyone
// otherwise.
func (rr *isoRandom) actor(preferred string) string {
	if preferred != "" && rr.r.Intn(100) < 80 {
		if _, ok := rr.w.conns[preferred]; ok {
			return preferred
		}
	}
	return pickOne(rr.r, rr.w.callers)
}

// agencies lists every agency of the directory.
func (rr *isoRandom) agencies() []string { return slices.Sorted(keysOf(rr.w.m.suspended)) }

func (rr *isoRandom) agencyCallers() []string {
	return append(slices.Clone(isoActive), isoSuspended)
}

// audience draws an audience: owner only, all members, named agencies,
// or named working groups (with or without named agencies).
func (rr *isoRandom) audience() mAudience {
	var a mAudience
	switch rr.r.Intn(5) {
	case 0:
	case 1:
		a.all = true
	case 2, 3:
		for _, ag := range rr.agencies() {
			if rr.r.Intn(3) == 0 {
				a.agencies = append(a.agencies, ag)
			}
		}
	}
	if a.all {
		return a
	}
	for _, g := range []string{isoUNWG, isoNGONet} {
		if rr.r.Intn(3) == 0 {
			a.groups = append(a.groups, g)
		}
	}
	return a
}

// judge checks a step's answer; when allowed and successful, apply runs
// and the model's new state is recorded.
func (rr *isoRandom) judge(method, what, actor string, owners []string, want verdict, err error, apply func()) bool {
	if d := rr.w.m.door(actor, method); d != 0 {
		want = d
	}
	if len(owners) > 0 && !slices.Contains(owners, actor) {
		rr.tl.cross.Add(1)
	}
	rr.stepCalls++
	ok := rr.tl.judge(method, actor+" "+shortMethod(method)+" "+what, want, err)
	if ok && want == vAllow && apply != nil {
		apply()
		rr.w.record()
	}
	return ok && want == vAllow
}

// verdict returns the door's verdict for the actor when it refuses,
// else v.
func (rr *isoRandom) verdict(method, actor string, v func() verdict) verdict {
	if d := rr.w.m.door(actor, method); d != 0 {
		return d
	}
	return v()
}

// step makes one random operation and returns the resources it touched.
func (rr *isoRandom) step(n int) []string {
	w, m, r := rr.w, rr.w.m, rr.r
	refs, plans, datasets := w.referralNames(), w.planNames(), w.datasetNames()
	switch k := r.Intn(100); {
	case k < 12: // send a referral
		rr.ops["create referral"]++
		sender := pickOne(r, rr.agencyCallers())
		receiver := pickOne(r, rr.agencies())
		for receiver == sender {
			receiver = pickOne(r, rr.agencies())
		}
		resp, err := w.conn(sender).referrals().CreateReferral(bg(), &exchangev1.CreateReferralRequest{Referral: isoReferral(receiver), RequestId: nextRequestID()})
		rr.judge(exchangev1.ReferralService_CreateReferral_FullMethodName, "to "+receiver, sender, nil, m.createReferral(receiver), err, func() {
			m.addReferral(resp.GetReferral().GetName(), sender, receiver, "")
		})
		return []string{resp.GetReferral().GetName()}
	case k < 22: // acknowledge or accept
		rr.ops["acknowledge/accept referral"]++
		name := pickOne(r, refs)
		actor := rr.actor(m.referrals[name].receiver)
		if m.referrals[name].state == rsRequested {
			_, err := w.conn(actor).referrals().AcknowledgeReferral(bg(), &exchangev1.AcknowledgeReferralRequest{Name: name})
			rr.judge(exchangev1.ReferralService_AcknowledgeReferral_FullMethodName, name, actor, []string{m.referrals[name].sender, m.referrals[name].receiver},
				m.referralMove(actor, name, verbAcknowledge), err, func() { m.referrals[name].state = rsReceived })
		} else {
			_, err := w.conn(actor).referrals().AcceptReferral(bg(), &exchangev1.AcceptReferralRequest{Name: name})
			rr.judge(exchangev1.ReferralService_AcceptReferral_FullMethodName, name, actor, []string{m.referrals[name].sender, m.referrals[name].receiver},
				m.referralMove(actor, name, verbAccept), err, func() { m.referrals[name].state = rsAccepted })
		}
		return []string{name}
	case k < 31: // forward
		rr.ops["forward referral"]++
		name := pickOne(r, refs)
		actor := rr.actor(m.referrals[name].receiver)
		to := pickOne(r, rr.agencies())
		for to == actor {
			to = pickOne(r, rr.agencies())
		}
		resp, err := w.conn(actor).referrals().ForwardReferral(bg(), isoForward(name, to))
		want := rr.verdict(exchangev1.ReferralService_ForwardReferral_FullMethodName, actor, func() verdict { return m.forward(actor, name, to) })
		rr.judge(exchangev1.ReferralService_ForwardReferral_FullMethodName, name+" to "+to, actor, []string{m.referrals[name].sender, m.referrals[name].receiver}, want, err, func() {
			m.addReferral(resp.GetReferral().GetName(), actor, to, name)
		})
		return []string{name, resp.GetReferral().GetName()}
	case k < 38: // revoke consent
		rr.ops["revoke consent"]++
		name := pickOne(r, refs)
		actor := rr.actor(m.referrals[name].sender)
		_, err := w.conn(actor).referrals().RevokeReferralConsent(bg(), &exchangev1.RevokeReferralConsentRequest{Name: name, Reason: "withdrawn"})
		rr.judge(exchangev1.ReferralService_RevokeReferralConsent_FullMethodName, name, actor, []string{m.referrals[name].sender, m.referrals[name].receiver},
			m.revokeConsent(actor, name), err, func() { m.revoke(name) })
		return append([]string{name}, m.referrals[name].children...)
	case k < 40: // erase a referral's details
		rr.ops["erase details"]++
		name := pickOne(r, refs)
		actor := rr.actor(m.referrals[name].sender)
		_, err := w.conn(actor).referrals().EraseReferralDetails(bg(), &exchangev1.EraseReferralDetailsRequest{Name: name, Reason: "erasure requested by the person", ReasonCode: exchangev1.ErasureReason_ERASURE_REASON_PERSON_REQUEST})
		rr.judge(exchangev1.ReferralService_EraseReferralDetails_FullMethodName, name, actor, []string{m.referrals[name].sender, m.referrals[name].receiver},
			m.eraseDetails(actor, name), err, func() { m.referrals[name].erased = true })
		return []string{name}
	case k < 45: // create a plan
		rr.ops["create plan"]++
		actor := pickOne(r, rr.agencyCallers())
		parent := actor
		if r.Intn(10) == 0 {
			parent = pickOne(r, isoActive)
		}
		a, sub := rr.audience(), pickOne(r, []string{"KH-2", "KH-12"})
		ext := fmt.Sprintf("rnd-%d", w.next())
		resp, err := w.conn(actor).plans().CreatePlan(bg(), &exchangev1.CreatePlanRequest{Parent: parent, Plan: isoPlan(ext, sub, a, "Plan "+ext), RequestId: nextRequestID()})
		want := rr.verdict(exchangev1.PlanService_CreatePlan_FullMethodName, actor, func() verdict { return m.ownParent(actor, parent) })
		rr.judge(exchangev1.PlanService_CreatePlan_FullMethodName, "under "+parent, actor, nil, want, err, func() {
			name := resp.GetPlan().GetName()
			m.plans[name] = &mPlan{name: name, owner: actor, externalID: ext, versions: []mPlanVersion{{audience: a, subdivision: sub, title: "Plan " + ext}}}
		})
		return []string{resp.GetPlan().GetName()}
	case k < 55: // change a plan's audience
		rr.ops["change plan audience"]++
		name := pickOne(r, plans)
		p := m.plans[name]
		actor := rr.actor(p.owner)
		a := rr.audience()
		_, err := w.conn(actor).plans().UpdatePlan(bg(), m.planUpdate(name, a, p.current().title))
		want := rr.verdict(exchangev1.PlanService_UpdatePlan_FullMethodName, actor, func() verdict { return m.changePlan(actor, name) })
		rr.judge(exchangev1.PlanService_UpdatePlan_FullMethodName, fmt.Sprintf("%s to %v", name, a), actor, []string{p.owner}, want, err, func() {
			m.applyPlanUpdate(name, a, p.current().title)
		})
		return []string{name}
	case k < 57: // cancel a plan
		rr.ops["cancel plan"]++
		name := pickOne(r, plans)
		actor := rr.actor(m.plans[name].owner)
		_, err := w.conn(actor).plans().CancelPlan(bg(), &exchangev1.CancelPlanRequest{Name: name, Reason: "dropped"})
		want := rr.verdict(exchangev1.PlanService_CancelPlan_FullMethodName, actor, func() verdict { return m.changePlan(actor, name) })
		rr.judge(exchangev1.PlanService_CancelPlan_FullMethodName, name, actor, []string{m.plans[name].owner}, want, err, func() { m.applyPlanCancel(name) })
		return []string{name}
	case k < 65: // change a dataset's audience
		rr.ops["change dataset audience"]++
		name := pickOne(r, datasets)
		d := m.datasets[name]
		actor := rr.actor(d.owner)
		a, public := rr.audience(), r.Intn(3) == 0
		req := m.datasetUpdate(name, "audience", "public_aggregates")
		req.Dataset.Audience, req.Dataset.PublicAggregates = a.proto(), public
		_, err := w.conn(actor).datasets().UpdateDataset(bg(), req)
		want := rr.verdict(exchangev1.DatasetService_UpdateDataset_FullMethodName, actor, func() verdict { return m.datasetOwn(actor, name) })
		rr.judge(exchangev1.DatasetService_UpdateDataset_FullMethodName, fmt.Sprintf("%s audience %v public %v", name, a, public), actor, []string{d.owner}, want, err, func() {
			d.audience, d.publicAggregates = a, public
		})
		return []string{name}
	case k < 71: // change a dataset's contributors
		rr.ops["change dataset contributors"]++
		name := pickOne(r, datasets)
		d := m.datasets[name]
		actor := rr.actor(d.owner)
		var contributors, groups []string
		for _, ag := range rr.agencies() {
			if r.Intn(4) == 0 {
				contributors = append(contributors, ag)
			}
		}
		for _, g := range []string{isoUNWG, isoNGONet} {
			if r.Intn(3) == 0 {
				groups = append(groups, g)
			}
		}
		req := m.datasetUpdate(name, "contributors", "contributor_groups")
		req.Dataset.Contributors, req.Dataset.ContributorGroups = contributors, groups
		_, err := w.conn(actor).datasets().UpdateDataset(bg(), req)
		want := rr.verdict(exchangev1.DatasetService_UpdateDataset_FullMethodName, actor, func() verdict { return m.datasetOwn(actor, name) })
		rr.judge(exchangev1.DatasetService_UpdateDataset_FullMethodName, fmt.Sprintf("%s contributors %v groups %v", name, contributors, groups), actor, []string{d.owner}, want, err, func() {
			d.contributors, d.contributorGroups = contributors, groups
		})
		return []string{name}
	case k < 84: // write a row, mostly as one who may
		rr.ops["write rows"]++
		name := pickOne(r, datasets)
		var writers []string
		for _, a := range rr.agencyCallers() {
			if m.contributes(a, m.datasets[name]) {
				writers = append(writers, a)
			}
		}
		actor := pickOne(r, rr.agencyCallers())
		if len(writers) > 0 && r.Intn(4) > 0 {
			actor = pickOne(r, writers)
		}
		loc := pickOne(r, []string{"KH-12", "KH-2"})
		_, err := w.conn(actor).datasets().WriteDatasetRows(bg(), &exchangev1.WriteDatasetRowsRequest{Dataset: name, Writes: []*exchangev1.RowWrite{{Row: isoRow(loc, int64(1+r.Intn(20)))}}})
		want := rr.verdict(exchangev1.DatasetService_WriteDatasetRows_FullMethodName, actor, func() verdict { return m.datasetWrite(actor, name) })
		var roles []string
		for _, g := range m.datasets[name].contributorGroups {
			if role, ok := m.groups[g][actor]; ok {
				roles = append(roles, fmt.Sprintf("%v of %s", role, g))
			}
		}
		what := fmt.Sprintf("%s (contributors %v, groups %v; the writer is %v)", name, m.datasets[name].contributors, m.datasets[name].contributorGroups, roles)
		rr.judge(exchangev1.DatasetService_WriteDatasetRows_FullMethodName, what, actor, []string{m.datasets[name].owner}, want, err, func() {
			m.datasets[name].writers[actor+"|"+loc] = true
		})
		return []string{name}
	case k < 92: // add or remove a working-group member
		rr.ops["change group members"]++
		group := pickOne(r, []string{isoUNWG, isoNGONet})
		actor := modelSecretariat
		if r.Intn(5) == 0 {
			actor = pickOne(r, rr.agencyCallers())
		}
		members := maps.Clone(m.groups[group])
		who := pickOne(r, rr.agencies())
		roles := []exchangev1.MembershipRole{exchangev1.MembershipRole_MEMBERSHIP_ROLE_MEMBER, exchangev1.MembershipRole_MEMBERSHIP_ROLE_OBSERVER, exchangev1.MembershipRole_MEMBERSHIP_ROLE_SECRETARIAT}
		if _, in := members[who]; in && r.Intn(2) == 0 {
			delete(members, who)
		} else {
			members[who] = pickOne(r, roles)
		}
		g := &exchangev1.WorkingGroup{Name: group, DisplayName: "Group", Kind: exchangev1.WorkingGroupKind_WORKING_GROUP_KIND_WORKING_GROUP}
		for _, a := range slices.Sorted(keysOf(members)) {
			g.Members = append(g.Members, &exchangev1.Membership{Agency: a, Role: members[a]})
		}
		_, err := w.conn(actor).dir.UpdateWorkingGroup(bg(), &exchangev1.UpdateWorkingGroupRequest{WorkingGroup: g, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"members"}}})
		want := rr.verdict(exchangev1.DirectoryService_UpdateWorkingGroup_FullMethodName, actor, func() verdict { return m.updateGroup(actor, group) })
		rr.judge(exchangev1.DirectoryService_UpdateWorkingGroup_FullMethodName, fmt.Sprintf("%s members %v", group, members), actor, nil, want, err, func() {
			m.groups[group] = members
		})
		return nil
	default: // suspend or reactivate an agency
		rr.ops["suspend/reactivate agency"]++
		target := pickOne(r, rr.agencies())
		actor := modelSecretariat
		if r.Intn(8) == 0 {
			actor = pickOne(r, rr.agencyCallers())
		}
		suspend := !m.suspended[target]
		if r.Intn(6) == 0 {
			suspend = !suspend
		}
		var err error
		method := exchangev1.DirectoryService_SuspendAgency_FullMethodName
		if suspend {
			_, err = w.conn(actor).dir.SuspendAgency(bg(), &exchangev1.SuspendAgencyRequest{Name: target, Reason: "random"})
		} else {
			method = exchangev1.DirectoryService_ReactivateAgency_FullMethodName
			_, err = w.conn(actor).dir.ReactivateAgency(bg(), &exchangev1.ReactivateAgencyRequest{Name: target})
		}
		want := rr.verdict(method, actor, func() verdict { return m.agencyState(target, suspend) })
		rr.judge(method, target, actor, nil, want, err, func() { m.suspended[target] = suspend })
		return nil
	}
}

// readAll checks reads by every caller against the model: Get on the
// touched resources and on a sample of the others (on all of them when
// full), a missing name, and every list and count.
func (rr *isoRandom) readAll(touched []string, full bool) {
	w, m, r := rr.w, rr.w.m, rr.r
	sample := func(names []string, n int) []string {
		if full || len(names) <= n {
			return names
		}
		var out []string
		for _, i := range r.Perm(len(names))[:n] {
			out = append(out, names[i])
		}
		return out
	}
	refs := sample(w.referralNames(), 3)
	datasets := sample(w.datasetNames(), 2)
	plans := sample(w.planNames(), 2)
	for _, n := range touched {
		switch {
		case m.referrals[n] != nil:
			refs = append(refs, n)
		case m.datasets[n] != nil:
			datasets = append(datasets, n)
		case m.plans[n] != nil:
			plans = append(plans, n)
		}
	}
	type planRead struct {
		name    string
		version int
	}
	var planReads []planRead
	for _, n := range plans {
		planReads = append(planReads, planRead{n, 0})
		v := 1 + r.Intn(len(m.plans[n].versions))
		if full {
			for v := 1; v <= len(m.plans[n].versions); v++ {
				planReads = append(planReads, planRead{n, v})
			}
		} else {
			planReads = append(planReads, planRead{n, v})
		}
	}
	missing := twinOf(pickOne(r, w.referralNames()))

	var wg sync.WaitGroup
	for _, c := range w.callers {
		wg.Add(1)
		go func(c string) {
			defer wg.Done()
			if m.suspended[c] {
				_, err := w.conn(c).dir.ListAgencies(bg(), &exchangev1.ListAgenciesRequest{})
				rr.tl.judge("ListAgencies", c+" ListAgencies", vSuspended, err)
				return
			}
			for _, n := range refs {
				w.checkReferral(rr.tl, m, c, n)
			}
			// A referral the caller may not see answers like a missing one.
			for _, n := range refs {
				if m.getReferral(c, n) == vInvisible {
					_, realErr := w.conn(c).referrals().GetReferral(bg(), &exchangev1.GetReferralRequest{Name: n})
					_, twinErr := w.conn(c).referrals().GetReferral(bg(), &exchangev1.GetReferralRequest{Name: twinOf(n)})
					rr.tl.twins.Add(1)
					if ok, diff := sameStatus(realErr, twinErr, n, twinOf(n)); !ok {
						rr.tl.twinsDiffer.Add(1)
						rr.tl.problem("NOT_FOUND differs from a missing name", c+" GetReferral "+n+": "+diff)
					}
					break
				}
			}
			w.checkReferral(rr.tl, m, c, missing)
			for _, n := range datasets {
				w.checkDataset(rr.tl, m, c, n)
			}
			for _, p := range planReads {
				w.checkPlan(rr.tl, m, c, p.name, p.version)
			}
			w.checkLists(rr.tl, m, c)
		}(c)
	}
	wg.Wait()
}
