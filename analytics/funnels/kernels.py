"""The per-trader state machines of funnels, numba-compiled (plain Python, slow but exact, where numba
is missing).

Inputs are sorted by trader, time (and step order at equal times); ``starts`` holds each trader's
first row and, last, the number of rows; ``smask`` has bit k set when the event matches step k+1,
``xmask`` bit i when it matches an exclusion "between step i and i+1"; times and the window are
epoch microseconds.
"""

from __future__ import annotations

import numpy as np

from analytics.funnels.spec import US

try:  # numba arrives with shap; without it the same kernels run as plain Python (slow but exact)
    from numba import njit
except ImportError:  # pragma: no cover - exercised only where numba is missing
    def njit(*args, **kwargs):
        if args and callable(args[0]):
            return args[0]
        return lambda fn: fn


@njit(cache=True)
def _ordered_advance(row, t, sm, xm, multiple, n, window, strict,
                     e_set, e_entry, e_excl, e_times, e_rows, best):
    """One event (or one step of an event at a mixed-step tie) applied to the attempts of one trader.

    ``e_*[k]`` is the latest attempt that reached step k (k = 0 is the current instant); ``best`` holds
    the kept attempt: [furthest step, entry time, excluded, step times...].
    """
    # Exclusions are looked at before steps, from the furthest "before step i" down.
    for i in range(n - 1, 0, -1):
        if (xm >> i) & 1 and e_set[i] and t - e_entry[i] <= window:
            reached_next = e_set[i + 1] and e_entry[i + 1] == e_entry[i]
            if not reached_next and not e_excl[i]:
                e_excl[i] = True
                if best[0] == i and t - best[1] <= window:
                    best[2] = 1
    # Steps from the highest candidate down, so one event moves an attempt by one step at most.
    for s in range(n, 0, -1):
        if (sm >> (s - 1)) & 1:
            p = s - 1
            if not e_set[p] or t - e_entry[p] > window:
                continue
            if e_set[s] and e_entry[s] == e_entry[p]:
                continue  # this attempt already reached step s
            if multiple:
                used = False
                for q in range(p):
                    if e_rows[p, q] == row:
                        used = True
                if used:
                    continue  # at a tie, one event cannot serve two steps of one attempt
            if not e_excl[p]:
                e_set[s] = True
                e_entry[s] = e_entry[p]
                e_excl[s] = False
                for q in range(p):
                    e_times[s, q] = e_times[p, q]
                    e_rows[s, q] = e_rows[p, q]
                e_times[s, p] = t
                e_rows[s, p] = row
            if s > best[0] or (s == best[0] and best[2] == 1):
                best[0] = s
                best[1] = e_entry[p]
                best[2] = 1 if e_excl[p] else 0
                for q in range(p):
                    best[3 + q] = e_times[p, q]
                best[3 + p] = t
    if strict and not multiple:
        # Strict: any step this event does not match loses its progress.
        for k in range(1, n + 1):
            if not (sm >> (k - 1)) & 1:
                e_set[k] = False
                e_excl[k] = False
                e_entry[k] = 0


@njit(cache=True)
def ordered_pass(starts, ts, smask, xmask, n, window, strict):
    """Ordered and strict funnels. Returns (reached, times): reached = furthest step of the kept
    attempt (0: never entered, -1: removed by an exclusion), times[:, k] = its step-k time."""
    people = len(starts) - 1
    reached = np.zeros(people, np.int8)
    times = np.zeros((people, n), np.int64)
    e_set = np.zeros(n + 1, np.bool_)
    e_entry = np.zeros(n + 1, np.int64)
    e_excl = np.zeros(n + 1, np.bool_)
    e_times = np.zeros((n + 1, n), np.int64)
    e_rows = np.zeros((n + 1, n), np.int64)
    best = np.zeros(n + 3, np.int64)
    for person in range(people):
        a = starts[person]
        b = starts[person + 1]
        e_set[:] = False
        e_excl[:] = False
        e_entry[:] = 0
        best[:] = 0
        i = a
        while i < b:
            j = i + 1
            while j < b and ts[j] == ts[i]:
                j += 1
            e_set[0] = True
            e_entry[0] = ts[i]
            e_excl[0] = False
            if j - i == 1:
                _ordered_advance(i, ts[i], smask[i], xmask[i], False, n, window, strict,
                                 e_set, e_entry, e_excl, e_times, e_rows, best)
            else:
                same = True
                for k in range(i + 1, j):
                    if smask[k] != smask[i] or xmask[k] != xmask[i]:
                        same = False
                if same:
                    for k in range(i, j):
                        _ordered_advance(k, ts[k], smask[k], xmask[k], False, n, window, strict,
                                         e_set, e_entry, e_excl, e_times, e_rows, best)
                else:
                    # Different steps at one instant: each matched step in step order; exclusions and
                    # the strict reset are skipped here.
                    for s in range(n):
                        for k in range(i, j):
                            if (smask[k] >> s) & 1:
                                _ordered_advance(k, ts[k], np.int64(1) << s, np.int64(0), True, n, window,
                                                 strict, e_set, e_entry, e_excl, e_times, e_rows, best)
            if e_set[n]:
                break  # the first full conversion ends the search
            i = j
        if best[2] == 1:
            reached[person] = -1
        else:
            reached[person] = best[0]
            for q in range(best[0]):
                times[person, q] = best[3 + q]
    return reached, times


@njit(cache=True)
def unordered_pass(starts, ts, smask, xmask, n, window, max_rows):
    """Unordered funnels: step k = k distinct steps within one sliding window.
    Returns (reached, times) like ordered_pass; times are the sorted first occurrences."""
    people = len(starts) - 1
    reached = np.zeros(people, np.int8)
    times = np.zeros((people, n), np.int64)
    queue = np.zeros((n, max_rows + 1), np.int64)  # per step, the times collected (front = oldest)
    head = np.zeros(n, np.int64)
    tail = np.zeros(n, np.int64)
    best_times = np.zeros(n, np.int64)
    fronts = np.zeros(n, np.int64)
    for person in range(people):
        a = starts[person]
        b = starts[person + 1]
        head[:] = 0
        tail[:] = 0
        completed = 0
        best = 0
        for r in range(a, b):
            t = ts[r]
            # Drop collected events that fell out of the newest event's window (after recording the
            # progress they were part of).
            while True:
                oldest = -1
                for s in range(n):
                    if tail[s] > head[s] and (oldest < 0 or queue[s, head[s]] < queue[oldest, head[oldest]]):
                        oldest = s
                if oldest < 0:
                    break
                if completed < n and queue[oldest, head[oldest]] + window >= t:
                    break
                if completed > best:
                    best = completed
                    m = 0
                    for s in range(n):
                        if tail[s] > head[s]:
                            fronts[m] = queue[s, head[s]]
                            m += 1
                    best_times[:m] = np.sort(fronts[:m])
                head[oldest] += 1
                if head[oldest] == tail[oldest]:
                    completed -= 1
            if smask[r] == 0:
                if xmask[r] != 0:
                    # An exclusion wipes the progress (the trader stays in the funnel).
                    head[:] = 0
                    tail[:] = 0
                    completed = 0
            else:
                # The matched step whose latest collected event is oldest (an empty step first).
                pick = -1
                pick_t = np.int64(0)
                for s in range(n):
                    if (smask[r] >> s) & 1:
                        last = queue[s, tail[s] - 1] if tail[s] > head[s] else np.int64(0)
                        if pick < 0 or last < pick_t:
                            pick = s
                            pick_t = last
                if tail[pick] == head[pick]:
                    completed += 1
                    head[pick] = 0
                    tail[pick] = 0
                queue[pick, tail[pick]] = t
                tail[pick] += 1
            if best == n:
                break
            if r == b - 1 and completed > best:
                best = completed
                m = 0
                for s in range(n):
                    if tail[s] > head[s]:
                        fronts[m] = queue[s, head[s]]
                        m += 1
                best_times[:m] = np.sort(fronts[:m])
        reached[person] = best
        for q in range(best):
            times[person, q] = best_times[q]
    return reached, times


@njit(cache=True)
def trends_pass(starts, ts, smask, xmask, period, n, window, strict, max_rows):
    """Funnel trends: per trader, one attempt per entry period.

    Returns (person, period, converted) rows: a trader who entered in a period appears once for it,
    converted = 1 when an attempt from that period reached the last step.
    """
    total = len(ts)
    out_person = np.empty(total, np.int64)
    out_period = np.empty(total, np.int64)
    out_conv = np.empty(total, np.int8)
    count = 0
    cap = max_rows + 1
    slot_period = np.zeros(cap, np.int64)
    slot_alive = np.zeros(cap, np.bool_)
    e_set = np.zeros((cap, n + 1), np.bool_)
    e_ts = np.zeros((cap, n + 1), np.int64)
    e_excl = np.zeros((cap, n + 1), np.bool_)
    m_step = np.zeros(cap, np.int64)
    m_ts = np.zeros(cap, np.int64)
    m_excl = np.zeros(cap, np.int8)  # 0 not excluded, 1 partial, 2 full
    res_period = np.zeros(cap, np.int64)
    res_conv = np.zeros(cap, np.int8)
    for person in range(len(starts) - 1):
        a = starts[person]
        b = starts[person + 1]
        slots = 0
        results = 0
        for r in range(a, b):
            t = ts[r]
            sm = smask[r]
            xm = xmask[r]
            for i in range(n - 1, 0, -1):
                if (xm >> i) & 1:
                    s = i + 1
                    for k in range(slots):
                        if not slot_alive[k]:
                            continue
                        in_window = e_set[k, i] and t - e_ts[k, i] <= window
                        if in_window and not (e_set[k, s] and e_ts[k, s] == e_ts[k, i]) and not e_excl[k, i]:
                            e_excl[k, i] = True
                            if m_step[k] == i and t - m_ts[k] <= window:
                                m_excl[k] = 1
            for s in range(n, 0, -1):
                if not (sm >> (s - 1)) & 1:
                    continue
                if s == 1:
                    p = period[r]
                    done = False
                    for q in range(results):
                        if res_period[q] == p:
                            done = True
                    if done:
                        continue
                    slot = -1
                    for k in range(slots):
                        if slot_alive[k] and slot_period[k] == p:
                            slot = k
                    if slot < 0 or (m_step[slot] == 1 and m_excl[slot] != 0):
                        if slot < 0:
                            slot = slots
                            slots += 1
                        slot_alive[slot] = True
                        slot_period[slot] = p
                        e_set[slot, :] = False
                        e_excl[slot, :] = False
                        e_ts[slot, :] = 0
                        m_step[slot] = 1
                        m_ts[slot] = t
                        m_excl[slot] = 0
                    e_set[slot, 1] = True
                    e_ts[slot, 1] = t
                    e_excl[slot, 1] = False
                else:
                    prev = s - 1
                    for k in range(slots):
                        if not slot_alive[k]:
                            continue
                        if not e_set[k, prev] or t - e_ts[k, prev] > window:
                            continue
                        if e_set[k, s] and e_ts[k, s] == e_ts[k, prev]:
                            continue
                        prev_excl = e_excl[k, prev]
                        if not prev_excl:
                            e_set[k, s] = True
                            e_ts[k, s] = e_ts[k, prev]
                            e_excl[k, s] = False
                        if e_set[k, n]:
                            res_period[results] = slot_period[k]
                            res_conv[results] = 1
                            results += 1
                            slot_alive[k] = False
                        elif s > m_step[k] or (s == m_step[k] and m_excl[k] == 1):
                            m_step[k] = s
                            m_ts[k] = t
                            m_excl[k] = 2 if prev_excl else 0
            if strict:
                for k in range(slots):
                    if slot_alive[k]:
                        for i in range(1, n + 1):
                            if not (sm >> (i - 1)) & 1:
                                e_set[k, i] = False
                                e_excl[k, i] = False
                                e_ts[k, i] = 0
        fully_excluded = False
        for k in range(slots):
            if slot_alive[k] and m_excl[k] == 2:
                fully_excluded = True
        if not fully_excluded:
            for k in range(slots):
                if not slot_alive[k] or m_step[k] < 1 or m_excl[k] == 1:
                    continue
                done = False
                for q in range(results):
                    if res_period[q] == slot_period[k]:
                        done = True
                if not done:
                    res_period[results] = slot_period[k]
                    res_conv[results] = 0
                    results += 1
        for q in range(results):
            out_person[count] = person
            out_period[count] = res_period[q]
            out_conv[count] = res_conv[q]
            count += 1
    return out_person[:count], out_period[:count], out_conv[:count]


def warm_kernels() -> None:
    """Load (or, on a new checkout, compile) the state-machine kernels with the argument types the
    funnels use, so the first funnel a server computes does not pay for it (1-2 s; 13 s to compile)."""
    none = np.zeros(0, np.int64)
    starts = np.zeros(1, np.int64)  # no trader
    for strict in (False, True):
        ordered_pass(starts, none, none, none, 2, US, strict)
        trends_pass(starts, none, none, none, none, 2, US, strict, 0)
    unordered_pass(starts, none, none, none, 2, US, 0)
