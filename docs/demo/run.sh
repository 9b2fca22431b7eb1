#!/usr/bin/env bash
# A tour of the return procedure on a fresh database: seven requests take seven paths.
# Run by `make demo`, which sets ARTRETURNS_DB and puts `artreturns` on the PATH. Every
# command is one an operator would type; --now sets the time each one happens at, and
# --as who does it.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
ar() { artreturns "$@"; }
quiet() { artreturns "$@" >/dev/null; }
rma_of() { python3 -c 'import json,sys; print(json.load(sys.stdin)["instance"]["business_key"])'; }
step() { printf '\n== %s\n' "$*"; }

step "The procedure, the people who run it, and the orders it checks returns against"
ar init
ar --as owner deploy "$here/../../processes"
# From the first user on, only known users act, each within their roles.
quiet --as owner users add owner --role admin
# cs-ann also stands in for finance: four eyes must stop her deciding two levels (4.).
quiet --as owner users add cs-ann --role customer_service --role finance
for person in cs-bob:customer_service cs-lead:customer_service_supervisor \
              fin-fay:finance exp-eli:expert inspector-ivy:inspector log-leo:logistics \
              scheduler:logistics aud:auditor; do
  quiet --as owner users add "${person%%:*}" --role "${person#*:}"
done
ar --as owner users list
ar --as owner orders import "$here/orders.csv"

step "1. A sealed print, day 5: approved, shipped, inspected, refunded"
R1=$(ar --now 2026-11-02T09:00Z --as cs-ann apply --order D-2001 --artwork W-101 \
      --type return --reason no_reason --description "Changed my mind; still sealed." --json | rma_of)
quiet --now 2026-11-02T10:00Z --as cs-bob complete "$R1:approve_return" --data '{"decision": "approve", "note": "Sealed"}'
quiet --now 2026-11-03T09:00Z --as log-leo message "$R1" return_shipped --data '{"carrier": "SF Express", "tracking_number": "SF2001000001"}'
quiet --now 2026-11-05T09:00Z --as log-leo message "$R1" return_received
ar --now 2026-11-05T10:00Z --as inspector-ivy form "$R1:inspect_work"
quiet --now 2026-11-05T11:00Z --as inspector-ivy complete "$R1:inspect_work" \
      --data '{"outcome": "accepted", "grade": "excellent", "observations": [], "accessories": []}'
quiet --now 2026-11-05T15:00Z --as fin-fay complete "$R1:confirm_refund" \
      --data '{"amount": "1200.00", "channel": "original_payment"}'
quiet --now 2026-11-06T09:00Z --as cs-ann message "$R1" customer_confirmation --data '{"score": 5, "comment": "Quick and kind."}'
echo "$R1 refunded; its notices:"
ar --as aud notices list "$R1"

step "2. The same kind of print on day 13: declined by the 7-day rule"
R2=$(ar --now 2026-11-02T09:30Z --as cs-ann apply --order D-2002 --artwork W-102 \
      --type return --reason no_reason --description "Do not want it any more." --json | rma_of)
echo "$R2 declined"

step "3. A commissioned portrait: custom-made work is not returnable without a reason"
R3=$(ar --now 2026-11-02T10:00Z --as cs-ann apply --order D-2003 --artwork W-103 \
      --type return --reason no_reason --description "We do not like it." --json | rma_of)
echo "$R3 declined"

step "4. A bronze returned to the gallery: three approvers, and four eyes"
R4=$(ar --now 2026-11-02T11:00Z --as cs-ann apply --order D-2004 --artwork W-104 \
      --type return --reason no_reason --description "Buyer's remorse." --json | rma_of)
quiet --now 2026-11-02T12:00Z --as cs-ann complete "$R4:approve_return" --data '{"decision": "approve", "note": "ok"}'
if ar --now 2026-11-02T12:05Z --as cs-ann complete "$R4:confirm_refund_amount" \
      --data '{"decision": "approve", "amount": "162000.00"}'; then
  echo "four eyes did not hold" >&2; exit 1
fi
echo "(refused above, as it must be: cs-ann already decided a level of this return)"
quiet --now 2026-11-02T14:00Z --as fin-fay complete "$R4:confirm_refund_amount" \
      --data '{"decision": "approve", "amount": "162000.00", "note": "10 % restocking fee"}'
quiet --now 2026-11-03T10:00Z --as exp-eli complete "$R4:appraise_work" \
      --data '{"decision": "approve", "appraiser": "in_house", "findings": "As sold"}'
echo "$R4 approved by cs-ann, fin-fay and exp-eli; now waiting for the work to come back"

step "5. A celadon bowl exchanged for a dearer one: the difference is paid first"
R5=$(ar --now 2026-11-02T13:00Z --as cs-ann apply --order D-2005 --artwork W-105 \
      --type exchange --reason no_reason --description "A larger bowl, please." --json | rma_of)
quiet --now 2026-11-02T14:00Z --as cs-ann complete "$R5:approve_return" --data '{"decision": "approve", "note": "ok"}'
quiet --now 2026-11-03T09:00Z --as log-leo message "$R5" return_shipped --data '{"carrier": "SF Express", "tracking_number": "SF2005000005"}'
quiet --now 2026-11-05T09:00Z --as log-leo message "$R5" return_received
quiet --now 2026-11-05T10:00Z --as inspector-ivy complete "$R5:inspect_work" \
      --data '{"outcome": "accepted", "grade": "excellent", "observations": [], "accessories": []}'
quiet --now 2026-11-05T11:00Z --as cs-ann complete "$R5:confirm_replacement" \
      --data '{"artwork_id": "W-115", "title": "Celadon bowl, large", "artist": "He Lan", "price_amount": "3500.00"}'
quiet --now 2026-11-06T09:00Z --as cs-ann message "$R5" difference_paid --data '{"reference": "PAY-5521", "amount": {"amount": "700.00", "currency": "CNY"}}'
quiet --now 2026-11-06T15:00Z --as log-leo complete "$R5:pack_replacement" --data '{"checked": true}'
echo "$R5 exchanged; CNY 700.00 charged before the replacement shipped"

step "6. A switched canvas: the inspection finds a reproduction, a dispute opens"
R6=$(ar --now 2026-11-02T15:00Z --as cs-ann apply --order D-2006 --artwork W-106 \
      --type return --reason no_reason --description "I withdraw from the purchase." --json | rma_of)
quiet --now 2026-11-02T16:00Z --as cs-ann complete "$R6:approve_return" --data '{"decision": "approve", "note": "ok"}'
quiet --now 2026-11-02T17:00Z --as fin-fay complete "$R6:confirm_refund_amount" --data '{"decision": "approve", "amount": "25000.00"}'
quiet --now 2026-11-03T09:00Z --as exp-eli complete "$R6:appraise_work" \
      --data '{"decision": "approve", "appraiser": "in_house", "findings": "As sold"}'
quiet --now 2026-11-04T09:00Z --as log-leo message "$R6" return_shipped --data '{"carrier": "DHL", "tracking_number": "DHL2006000006"}'
quiet --now 2026-11-06T09:00Z --as log-leo message "$R6" return_received
photos="$(mktemp -d)"
printf 'photo: 61 x 50 cm' >"$photos/dimensions.jpg"
printf 'photo: no canvas stamp' >"$photos/stamp.jpg"
quiet --now 2026-11-06T10:00Z --as inspector-ivy evidence add "$R6" "$photos/dimensions.jpg" "$photos/stamp.jpg"
quiet --now 2026-11-06T11:00Z --as inspector-ivy complete "$R6:inspect_work" --data '{
  "outcome": "mismatch", "grade": "poor", "accessories": ["certificate of authenticity"],
  "observations": [
    {"zone": "support", "text": "61 x 50 cm; the work sold is 65 x 54 cm", "photos": ["dimensions.jpg"]},
    {"zone": "support", "text": "No Lefranc stamp on the back", "photos": ["stamp.jpg"]}]}'
ar --as aud evidence list "$R6"

step "7. An oil painting nobody approved in time: escalated after two days"
R7=$(ar --now 2026-11-02T16:00Z --as cs-ann apply --order D-2007 --artwork W-107 \
      --type return --reason no_reason --description "I withdraw from the purchase." --json | rma_of)
ar --now 2026-11-05T09:00Z --as scheduler run-due
ar --now 2026-11-05T09:00Z --as cs-lead tasks

step "Who may do what: a finance clerk cannot approve a return for customer service"
if ar --now 2026-11-06T17:00Z --as fin-fay complete "$R7:approve_return" \
      --data '{"decision": "approve", "note": "ok"}'; then
  echo "roles did not hold" >&2; exit 1
fi
echo "(refused above, and kept in $R7's history as a denied operation)"

step "The story of $R1, as an auditor reads it"
ar --as aud history "$R1"

step "Where each return stands"
ar --now 2026-11-06T18:00Z --as aud returns
ar --as aud verify "$R6"
