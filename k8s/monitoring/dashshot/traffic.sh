#!/usr/bin/env bash
# Drives a running `make dev` the way a few students would, through its
# gateway, for the README's picture of the dashboard: listings, anonymous
# browsing of the storefront, BUY clicks (some on stuff someone else holds),
# paid, declined, coupon and cancelled orders, orders left to expire, wrong
# passwords and a client that signs in too often.
#
#   ORDER_HOLD=1m make dev                      # so that orders expire during the run
#   k8s/monitoring/dashshot/traffic.sh http://localhost:8080 ROUNDS
#
# Needs curl and jq. DATA_DIR must be the stack's (for the admin grant).
set -euo pipefail

base=${1:-http://localhost:8080}
rounds=${2:-60}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
run=$(date +%s)

# req JAR METHOD PATH [JSON]: prints the body, then the status on a line of its own.
req() {
	local jar=$1 method=$2 path=$3 body=${4:-}
	if [[ -n $body ]]; then
		curl -s -b "$tmp/$jar" -c "$tmp/$jar" -X "$method" -H 'Content-Type: application/json' \
			-d "$body" -w '\n%{http_code}' "$base$path"
	else
		curl -s -b "$tmp/$jar" -c "$tmp/$jar" -X "$method" -w '\n%{http_code}' "$base$path"
	fi
}
status() { tail -n1; }
body() { sed '$d'; }

signup() { req "$1" POST /api/users/signup "{\"email\":\"$1-$run@uni.edu\",\"password\":\"password123\"}" >/dev/null; }

sell() { # sell TITLE PRICE: prints the stuff id
	req seller POST /api/stuff "{\"title\":\"$1\",\"description\":\"notes for $1\",\"price\":$2,\"delivery\":\"https://files.example/$1\"}" | body | jq -r .id
}

buy() { # buy JAR STUFF: prints the order id, or the status when refused
	local out code
	for _ in 1 2 3 4 5 6 7 8 9 10; do # the orders service learns of new stuff by event
		out=$(req "$1" POST /api/orders "{\"stuffId\":\"$2\"}")
		code=$(status <<<"$out")
		[[ $code != 404 ]] && break
		sleep 0.2
	done
	if [[ $code == 201 ]]; then body <<<"$out" | jq -r .id; else echo "$code"; fi
}

pay() { # pay JAR ORDER JSON-FIELDS
	for _ in 1 2 3 4 5 6 7 8 9 10; do # the payments service learns of the order by event
		code=$(req "$1" POST /api/payments "{\"orderId\":\"$2\",$3}" | status)
		[[ $code != 404 ]] && break
		sleep 0.2
	done
}

browse() { # anonymous pages: the storefront's cache serves most
	for _ in $(seq 1 "$1"); do
		curl -s -o /dev/null "$base/"
		curl -s -o /dev/null "$base/stuff/$2"
		curl -s -o /dev/null "$base/api/stuff/$2"
	done
	curl -s -o /dev/null "$base/api/stuff?page=2"
}

buyers=(ann bob cleo dan eve)
signup seller
for b in "${buyers[@]}" admin; do signup "$b"; done
# The operator's grant (README, "Admins and accounts"), then a refresh to carry the role.
${STUFFMART_DEV:-go run ./dev} admin grant "admin-$run@uni.edu" >/dev/null
req admin POST /api/users/refresh >/dev/null

for round in $(seq 1 "$rounds"); do
	a=${buyers[$((round % 5))]}
	b=${buyers[$(((round + 1) % 5))]}
	id=$(sell "notes-$run-$round" $((500 + round * 10)))
	browse 30 "$id"
	order=$(buy "$a" "$id")
	[[ ${#order} -gt 3 ]] || continue
	buy "$b" "$id" >/dev/null # 409: someone else is checking out
	case $((round % 6)) in
	0 | 1) pay "$a" "$order" '"paymentMethod":"pm_card_visa"' ;;
	2) # declined, then a good card
		pay "$a" "$order" '"paymentMethod":"pm_card_chargeDeclined"'
		pay "$a" "$order" '"paymentMethod":"pm_card_visa"' ;;
	3) req "$a" DELETE "/api/orders/$order" >/dev/null ;; # the buyer cancels
	4) # an admin's free coupon
		code=$(req admin POST /api/payments/coupons '{"percentOff":100,"maxRedemptions":1}' | body | jq -r .code)
		pay "$a" "$order" "\"coupon\":\"$code\"" ;;
	5) ;; # left unpaid: it expires at its deadline (ORDER_HOLD)
	esac
	# A wrong password now and then (every third round: a student signs in
	# well under the account's limit, SIGNIN_ACCOUNT_LIMIT); every tenth
	# round, a script that keeps trying one account (its failed-login
	# backoff and the limit refuse it).
	if ((round % 3 == 0)); then
		req "$b" POST /api/users/signin "{\"email\":\"$b-$run@uni.edu\",\"password\":\"wrong password\"}" >/dev/null
		req "$b" POST /api/users/signin "{\"email\":\"$b-$run@uni.edu\",\"password\":\"password123\"}" >/dev/null
	fi
	if ((round % 10 == 0)); then
		for _ in $(seq 1 12); do
			req mallory POST /api/users/signin "{\"email\":\"ann-$run@uni.edu\",\"password\":\"guess\"}" >/dev/null
		done
	fi
	if ((round % 5 == 0)); then # access tokens last 15 minutes
		req seller POST /api/users/refresh >/dev/null
		req admin POST /api/users/refresh >/dev/null
	fi
	sleep "${PAUSE:-8}"
done
