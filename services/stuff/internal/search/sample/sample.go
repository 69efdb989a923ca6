// Package sample makes listings that read like a campus marketplace's, for
// the benchmarks of search (and its memory figures): titles of a few words
// and descriptions of a few sentences, drawn with a skew from a vocabulary of
// common words, course subjects, accented words and rarer made-up words
// (names, codes), so the vocabulary grows with the listings as a real one
// does. The same i always gives the same listing. Not for the request path.
package sample

import (
	"math/rand/v2"
	"strconv"
	"strings"
)

var (
	subjects = strings.Fields(`linear algebra calculus statistics physics chemistry biology economics
		history philosophy psychology sociology literature programming algorithms databases networks
		geometry topology probability thermodynamics mechanics electronics anatomy genetics ecology
		marketing accounting finance law architecture design drawing painting music photography`)
	things = strings.Fields(`notes textbook book slides summary flashcards exam papers solutions lab
		report guide handbook workbook bike lamp desk chair kettle calculator laptop charger headphones
		monitor keyboard mouse poster plant rug mirror shelf fridge microwave jacket backpack tickets`)
	adjectives = strings.Fields(`complete annotated used new clean cheap handwritten printed detailed
		concise illustrated second third fourth edition vintage bright small large portable wireless
		quiet spare barely excellent`)
	accented = strings.Fields(`café crème déjà résumé naïve façade über señor mañana élève
		straße ångström zürich québec`)
	filler = strings.Fields(`the a and with for of in on from to this that it is was my your all
		some every few pages chapters semester course week exam year students worked examples
		includes covers pick up campus library near station condition good great works perfectly
		barely used cash only message me available weekend evenings`)
)

// made returns the n-th made-up word: rarer words, names and codes.
func made(n int) string {
	const cons, vow = "bcdfghklmnprstvz", "aeiou"
	var b strings.Builder
	for k := n + 7; b.Len() < 7; k /= 5 {
		b.WriteByte(cons[k%len(cons)])
		b.WriteByte(vow[(k/3)%len(vow)])
		if k == 0 {
			break
		}
	}
	if n%5 == 0 {
		return strings.ToUpper(b.String()[:4]) + strconv.Itoa(1000+n%9000)
	}
	return b.String()
}

func pick(r *rand.Rand, words []string) string {
	// Skewed: the first words of each list come up far more often.
	i := int(float64(len(words)) * r.Float64() * r.Float64())
	return words[i]
}

// Listing returns the i-th sample listing: its title, description and
// price in cents.
func Listing(i int) (title, description string, price int64) {
	r := rand.New(rand.NewPCG(uint64(i), 17))
	t := []string{pick(r, adjectives), pick(r, subjects), pick(r, things)}
	if r.IntN(3) == 0 {
		t = append(t, made(r.IntN(20_000)))
	}
	if r.IntN(8) == 0 {
		t = append(t, pick(r, accented))
	}
	title = strings.Join(t, " ")
	title = strings.ToUpper(title[:1]) + title[1:]
	var d []string
	for range 3 + r.IntN(5) {
		n := 6 + r.IntN(10)
		s := make([]string, 0, n)
		for range n {
			switch k := r.IntN(20); {
			case k < 12:
				s = append(s, pick(r, filler))
			case k < 15:
				s = append(s, pick(r, subjects))
			case k < 17:
				s = append(s, pick(r, things))
			case k < 18:
				s = append(s, pick(r, adjectives))
			case k < 19:
				s = append(s, made(r.IntN(60_000)))
			default:
				s = append(s, pick(r, accented))
			}
		}
		d = append(d, strings.ToUpper(s[0][:1])+s[0][1:]+" "+strings.Join(s[1:], " ")+".")
	}
	return title, strings.Join(d, " "), int64(100 + r.IntN(20_000))
}

// Queries are what the benchmarks search for, in turn: common and rare
// words, two-word searches, prefixes, typos and accents.
var Queries = []string{
	"linear algebra", "notes", "calculus notes", "physics textbook", "calc", "algebar",
	"statistcs", "desk lamp", "bike", "cafe", "programming slides", "chem",
	"thermodynamics exam", "used laptop charger", "handwritten", "straße", "anatomy flashcards",
	"geometry", "econ", "wireless headphones",
}

// Kinds are searches of each kind the benchmarks time one by one, over
// 5,000 sample listings: a word in about half of them, a rare made-up word
// (in 3 listings, 4 with a typo of it), a prefix, a typo, three words.
var Kinds = []struct{ Name, Q string }{
	{"common", "notes"},
	{"rare", "bifapihe"},
	{"prefix", "calc"},
	{"typo", "statistcs"},
	{"3words", "used laptop charger"},
}
