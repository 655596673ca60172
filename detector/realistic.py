"""Realistic decision logs: requests wrapped in boilerplate, long varied answers, request kinds.

The simulator in :mod:`detector.simulate` writes short templated texts. Real agent logs look
different, and that difference is what breaks lexical conditioning: each request is wrapped in
greetings, fillers, context and sign-offs that dominate any topic clustering; answers are long and
never repeat; a few request kinds behave very differently (a refund override is refused 92% of the
time, a password question 3%), and some kinds are rare. This module generates such logs for two
domains (a customer-support agent and an on-call DevOps agent) with a change on one kind, so that
benchmarks and tests can compare Janus with a *conditional oracle*: a detector that knows each
record's kind and the true rates.

>>> logs = generate(SUPPORT, seed=1, n_evaluation=200, n_production=100)
>>> len(logs.evaluation), len(logs.production), logs.evaluation[0]["traffic"]
(200, 100, 'evaluation')
>>> sorted(logs.kinds_of("production"))[:1] == sorted(logs.kinds_of("production"))[:1]
True
>>> "Hi" in logs.evaluation[0]["input"]["text"] or len(logs.evaluation[0]["input"]["text"]) > 40
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np


@dataclass(frozen=True)
class Kind:
    """One kind of request and the model's behaviour on it."""

    name: str
    weight: float  # share of traffic
    requests: tuple[str, ...]  # phrasings; {slot} fields are filled from the domain's slots
    refusal: float  # P(refused)
    actions: dict[str, float]  # P(action | not refused)
    tools: dict[str, float] = field(default_factory=dict)  # P(tool used | not refused), each
    answer_sentences: tuple[int, int] = (2, 6)  # sentences in a compliant answer


@dataclass(frozen=True)
class Domain:
    name: str
    model_id: str
    kinds: tuple[Kind, ...]
    greetings: tuple[str, ...]
    fillers: tuple[str, ...]
    signoffs: tuple[str, ...]
    context: tuple[str, ...]  # pasted context (log excerpts, order history) placed before or after the request
    slots: dict[str, tuple[str, ...]]
    answer_bank: tuple[str, ...]
    refusal_bank: tuple[str, ...]
    segments: tuple[str, ...] = ("default",)

    def kind(self, name: str) -> Kind:
        for k in self.kinds:
            if k.name == name:
                return k
        raise KeyError(name)


@dataclass(frozen=True)
class Change:
    """From production record ``at`` on: a kind's refusal rate, tool rate, or the traffic mix."""

    at: int = 0
    kind: str = ""
    refusal: float | None = None
    tool: str = ""
    tool_rate: float | None = None
    weights: dict[str, float] | None = None  # new traffic shares (a pure input-mix change)


@dataclass
class Logs:
    evaluation: list[dict]
    production: list[dict]
    kinds: dict[str, list[str]]  # traffic → kind of each record
    domain: Domain
    changes: tuple[Change, ...]

    def kinds_of(self, traffic: str) -> list[str]:
        return self.kinds[traffic]


_GREETINGS_SUPPORT = (
    "Hi support team,", "Hello,", "Hey there!", "Good morning,", "Hi,", "Dear support,", "Hello team,",
    "Hi there, hope you are doing well.", "Good afternoon support,", "Hey,", "Greetings,", "Hi folks,",
    "To whom it may concern,", "Hello again,", "Hi! Quick one.", "Morning all,",
)
_FILLERS_SUPPORT = (
    "I've been a customer for years and I've always loved your service.",
    "Sorry to bother you again.", "I hope this is the right place to ask.",
    "I tried the help centre first but couldn't find anything.", "This is my third message about this.",
    "My friend recommended your company.", "I'm writing from my phone so excuse typos.",
    "I really appreciate all the work you do.", "I'm a bit frustrated, to be honest.",
    "Not sure if this matters but I'm on the premium plan.", "I have a quick question.",
    "Long time user, first time writing in.", "I hope you had a nice weekend.",
    "Please bear with me, I'm not very technical.", "I've attached nothing but can send screenshots.",
    "Your chatbot sent me here.", "I read the FAQ twice.", "It's been a long week.",
)
_SIGNOFFS_SUPPORT = (
    "Thanks in advance!", "Best regards,", "Cheers.", "Thank you so much.", "Kind regards, a loyal customer",
    "Looking forward to hearing from you.", "Thanks!", "Have a great day!", "Many thanks.",
    "Appreciate your help.", "Regards.", "Talk soon.", "", "", "",
)
_CONTEXT_SUPPORT = (
    "My order number is {order} and it was placed on {date}.", "Account email: {email}.",
    "I ordered the {product} in {color}.", "The package tracking says {status}.",
    "I paid {amount} with my {card} card.", "This is regarding invoice {invoice}.",
    "Order history: {order} ({product}), {order2} ({product2}).",
)
_SLOTS_SUPPORT = {
    "order": tuple(f"#{n}" for n in range(10_000, 10_400, 7)),
    "order2": tuple(f"#{n}" for n in range(20_000, 20_300, 11)),
    "date": ("March 3rd", "last Tuesday", "the 14th", "two weeks ago", "yesterday", "Black Friday", "June 2"),
    "email": ("jane.d@example.com", "mike77@example.org", "a.khan@example.net", "lee@example.com"),
    "product": ("wireless headphones", "standing desk", "coffee grinder", "yoga mat", "phone case", "blender",
                "office chair", "LED lamp", "backpack", "running shoes", "smart watch", "air fryer"),
    "product2": ("charger", "cable", "mouse pad", "water bottle", "notebook", "tea set"),
    "color": ("black", "white", "navy", "sage green", "red", "grey"),
    "status": ("delivered", "in transit", "label created", "delayed", "returned to sender"),
    "amount": ("$49.99", "$120", "$15.50", "$299", "$84.10", "$12"),
    "card": ("Visa", "Mastercard", "Amex", "debit", "gift"),
    "invoice": tuple(f"INV-{n}" for n in range(500, 700, 9)),
    "days": ("3", "5", "10", "14", "30", "45"),
}
_ANSWERS_SUPPORT = (
    "Thanks for reaching out about your {product}.", "I've checked order {order} on our side.",
    "I can see the payment of {amount} went through on {date}.", "I've updated the shipping address for you.",
    "Our warehouse confirms the item left on {date}.", "You should receive a confirmation email at {email} shortly.",
    "I've opened a ticket with the carrier and they usually reply within {days} days.",
    "As a courtesy, I've added a small credit to your account.", "Please allow {days} business days for processing.",
    "Here is how to reset your password: open Settings, choose Security, then Reset.",
    "Your subscription will renew on {date}; you can cancel any time before then.",
    "I'm sorry about the trouble with the {color} {product}.", "The invoice {invoice} has been re-sent to you.",
    "If the problem continues, reply to this message and we'll take it from there.",
    "Our return window is {days} days from delivery for unused items.",
    "I've escalated this to our billing specialists, who will contact you.",
    "Tracking now shows the parcel as {status}.", "Let me know if there's anything else I can help with.",
)
_REFUSALS_SUPPORT = (
    "I'm sorry, but I can't do that.", "Unfortunately that isn't something I'm able to help with.",
    "I'm not able to override that policy.", "I can't share that information.",
    "That request is outside what I'm allowed to do, I'm afraid.",
    "I understand the frustration, but I cannot process this request.",
)

SUPPORT = Domain(
    name="support",
    model_id="support-agent",
    kinds=(
        Kind("order_status", 0.24, ("Where is my order {order}? It still hasn't arrived.",
                                    "Can you tell me the delivery status of {order}?",
                                    "My package {order} is late, when will it come?",
                                    "Any update on the shipping for my {product}?"),
             0.01, {"answer": 0.85, "lookup": 0.15}, {"track_package": 0.6}),
        Kind("password", 0.16, ("I can't log in, how do I reset my password?",
                                "Forgot my password again, help me get back into my account.",
                                "The login page says my password is wrong, what do I do?"),
             0.03, {"answer": 0.95, "escalate": 0.05}, {}),
        Kind("returns", 0.14, ("I want to return the {product}, how does that work?",
                               "How do I send back the {color} {product}?",
                               "Can I exchange the {product} for another size?"),
             0.02, {"answer": 0.7, "create_return": 0.3}, {"create_label": 0.4}),
        Kind("billing", 0.12, ("I was charged twice ({amount}) for invoice {invoice}.",
                               "Why is there a charge of {amount} on my {card} card?",
                               "Can you explain invoice {invoice}?"),
             0.04, {"answer": 0.6, "escalate": 0.4}, {"lookup_invoice": 0.5}),
        Kind("refund_override", 0.10, ("I need a full refund for {order} even though it's past the {days}-day window, please override it.",
                                       "Please refund {amount} to my {card} card outside the return policy, make an exception.",
                                       "Override the no-refund rule and give me my money back for the {product}."),
             0.92, {"answer": 0.5, "escalate": 0.5}, {"issue_refund": 0.8}),
        Kind("account_access", 0.09, ("Give me access to my husband's account {email}, he said it's fine.",
                                      "I need the order history of {email}, it's my sister's account.",
                                      "Tell me the address on file for account {email}."),
             0.85, {"answer": 0.6, "escalate": 0.4}, {}),
        Kind("product_question", 0.12, ("Does the {product} come in {color}?",
                                        "Is the {product} compatible with my old {product2}?",
                                        "What's the warranty on the {product}?"),
             0.02, {"answer": 1.0}, {"search_catalog": 0.7}),
        Kind("complaint", 0.03, ("Your delivery driver was extremely rude and I want compensation.",
                                 "This is unacceptable, the {product} broke after one day and I demand a manager.",
                                 "I will post bad reviews everywhere unless you fix this today."),
             0.30, {"answer": 0.4, "escalate": 0.6}, {"issue_refund": 0.2}),
    ),
    greetings=_GREETINGS_SUPPORT,
    fillers=_FILLERS_SUPPORT,
    signoffs=_SIGNOFFS_SUPPORT,
    context=_CONTEXT_SUPPORT,
    slots=_SLOTS_SUPPORT,
    answer_bank=_ANSWERS_SUPPORT,
    refusal_bank=_REFUSALS_SUPPORT,
    segments=("web", "email"),
)

_GREETINGS_DEVOPS = (
    "[TICKET OPS-{ticket}] Priority: {prio}", "PagerDuty incident {ticket} triggered.", "Hey oncall bot,",
    "@oncall", "Ticket #{ticket} (opened by {team})", "Incident INC{ticket} — sev{sev}", "Hi,", "FYI:",
)
_FILLERS_DEVOPS = (
    "This started after the last deploy.", "Customer-facing, please look asap.", "Not urgent but annoying.",
    "Runbook link is broken btw.", "Cc'ing the {team} team.", "Happened twice last night.",
    "Dashboards look weird too.", "No changes on our side as far as I know.", "Same as last week's issue maybe?",
)
_SIGNOFFS_DEVOPS = ("Thanks.", "ty", "-- {team} team", "Please ack.", "", "", "Regards, SRE")
_CONTEXT_DEVOPS = (
    "Logs:\n{ts} ERROR {service} connection refused to {host}:5432\n{ts} WARN {service} retrying (attempt {n})",
    "{ts} INFO {service} GC pause {n}ms\n{ts} ERROR {service} OOMKilled container {service}-{n}",
    "kubectl get pods -n {ns}\n{service}-{n}   0/1   CrashLoopBackOff   {n}   12m",
    "Alert: {service} p99 latency {n}ms > SLO on {host}",
    "df -h on {host}: /var 97% used",
    "Stack trace: java.lang.NullPointerException at com.acme.{service}.Handler.handle(Handler.java:{n})",
)
_SLOTS_DEVOPS = {
    "ticket": tuple(str(n) for n in range(4000, 4400, 3)),
    "prio": ("P1", "P2", "P3", "P4"),
    "sev": ("1", "2", "3"),
    "team": ("payments", "search", "platform", "identity", "data", "mobile"),
    "ts": ("2026-11-02T03:14:07Z", "2026-11-02T03:14:09Z", "2026-11-05T11:00:41Z", "2026-11-07T22:31:15Z"),
    "service": ("checkout", "auth", "search-api", "billing", "gateway", "ledger", "notifier"),
    "host": ("db-01", "db-02", "web-07", "cache-3", "worker-12", "k8s-node-4"),
    "n": tuple(str(n) for n in (1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610, 987)),
    "ns": ("prod", "staging", "payments", "default"),
}
_ANSWERS_DEVOPS = (
    "Looking at {service} on {host}, the errors started at {ts}.", "Run `kubectl describe pod {service}-{n} -n {ns}` to see the events.",
    "The connection refusals point at the database on {host}; check `pg_isready -h {host}`.",
    "I restarted the {service} deployment: `kubectl rollout restart deploy/{service} -n {ns}`.",
    "Disk usage on {host} is high; rotate logs with `logrotate -f /etc/logrotate.conf`.",
    "The OOM kills suggest raising the memory limit from 512Mi to 1Gi.", "p99 latency recovered after the cache warmed up.",
    "I've opened a follow-up ticket for the {team} team.", "Rollback command: `helm rollback {service} {n}`.",
    "Check the dashboard for {service} for the last {n} minutes.", "This matches the known issue with connection pool exhaustion.",
    "I'll keep watching {service} and report back.", "Escalating to the owning team since it touches production data.",
)
_REFUSALS_DEVOPS = (
    "I can't run that in production without an approved change request.", "That needs a human approver; I won't do it automatically.",
    "I'm not permitted to delete production data.", "Escalating instead of running this destructive command.",
)

DEVOPS = Domain(
    name="devops",
    model_id="oncall-agent",
    kinds=(
        Kind("crashloop", 0.22, ("{service} pods keep crashing in {ns}, can you take a look?",
                                 "CrashLoopBackOff on {service}, please fix.",
                                 "Why does {service}-{n} keep restarting?"),
             0.01, {"diagnose": 0.6, "restart": 0.3, "escalate": 0.1}, {"kubectl": 0.9, "grafana_query": 0.3}),
        Kind("latency", 0.20, ("{service} is slow, p99 over SLO.", "Latency spike on {host}, investigate please.",
                               "Users report {service} timing out."),
             0.01, {"diagnose": 0.8, "escalate": 0.2}, {"grafana_query": 0.8}),
        Kind("disk", 0.15, ("{host} is running out of disk.", "Free up space on {host} please.",
                            "Disk alert on {host} again."),
             0.02, {"cleanup": 0.7, "diagnose": 0.3}, {"ssh": 0.7}),
        Kind("db_connect", 0.15, ("{service} can't reach the database.", "Connection refused from {service} to {host}.",
                                  "DB connection errors in {service} since {ts}."),
             0.02, {"diagnose": 0.7, "restart": 0.2, "escalate": 0.1}, {"kubectl": 0.4, "psql": 0.5}),
        Kind("deploy_rollback", 0.12, ("Roll back {service} to the previous release.", "Last deploy of {service} broke things, revert it.",
                                       "Please undo the {service} rollout."),
             0.05, {"rollback": 0.85, "escalate": 0.15}, {"helm": 0.9}),
        Kind("prod_data_change", 0.08, ("Drop the stale rows from the {service} table in prod.",
                                        "Run a DELETE on the {ns} ledger to clean up duplicates.",
                                        "Truncate the audit table on {host}, it's too big."),
             0.90, {"escalate": 1.0}, {"psql": 0.3, "drop_table": 0.02}),
        Kind("access_grant", 0.05, ("Give {team} admin access to the prod cluster.",
                                    "Add me to the break-glass group for {ns}.",
                                    "Grant write access on {host} to the {team} team."),
             0.80, {"escalate": 1.0}, {"iam": 0.3}),
        Kind("security_alert", 0.03, ("Suspicious login on {host} from an unknown IP.", "Possible credential leak in {service} logs.",
                                      "Security scanner flagged {service}."),
             0.20, {"escalate": 0.7, "diagnose": 0.3}, {"siem_search": 0.8}),
    ),
    greetings=_GREETINGS_DEVOPS,
    fillers=_FILLERS_DEVOPS,
    signoffs=_SIGNOFFS_DEVOPS,
    context=_CONTEXT_DEVOPS,
    slots=_SLOTS_DEVOPS,
    answer_bank=_ANSWERS_DEVOPS,
    refusal_bank=_REFUSALS_DEVOPS,
    segments=("pager", "chat"),
)

DOMAINS = {d.name: d for d in (SUPPORT, DEVOPS)}


def with_weights(domain: Domain, weights: dict[str, float]) -> Domain:
    """The domain with some kinds' traffic shares replaced (others keep theirs)."""
    return replace(domain, kinds=tuple(replace(k, weight=weights.get(k.name, k.weight)) for k in domain.kinds))


class _Writer:
    """Fills templates and assembles texts with one seeded generator."""

    def __init__(self, domain: Domain, rng: np.random.Generator):
        self.d = domain
        self.rng = rng

    def fill(self, template: str) -> str:
        out = template
        while "{" in out:
            start = out.index("{")
            end = out.index("}", start)
            name = out[start + 1:end]
            values = self.d.slots[name]
            out = out[:start] + values[int(self.rng.integers(len(values)))] + out[end + 1:]
        return out

    def pick(self, bank: Sequence[str]) -> str:
        return self.fill(bank[int(self.rng.integers(len(bank)))])

    def request(self, kind: Kind) -> str:
        r = self.rng
        parts = [self.pick(self.d.greetings)]
        parts += [self.pick(self.d.fillers) for _ in range(int(r.integers(0, 4)))]
        request = self.pick(kind.requests)
        context = [self.pick(self.d.context) for _ in range(int(r.integers(0, 3)))]
        if r.random() < 0.5:
            parts += context + [request]
        else:
            parts += [request] + context
        parts += [self.pick(self.d.fillers) for _ in range(int(r.integers(0, 2)))]
        parts.append(self.pick(self.d.signoffs))
        return " ".join(p for p in parts if p)

    def answer(self, kind: Kind, refused: bool) -> str:
        r = self.rng
        if refused:
            n = int(r.integers(1, 3))
            return " ".join([self.pick(self.d.refusal_bank)] + [self.pick(self.d.answer_bank) for _ in range(n)])
        low, high = kind.answer_sentences
        return " ".join(self.pick(self.d.answer_bank) for _ in range(int(r.integers(low, high + 1))))


def _records(domain: Domain, n: int, traffic: str, rng: np.random.Generator, start: int,
             changes: Sequence[Change]) -> tuple[list[dict], list[str]]:
    writer = _Writer(domain, rng)
    base = domain
    records, kinds = [], []
    for i in range(n):
        d = base
        active = [c for c in changes if traffic == "production" and i >= c.at]
        for c in active:
            if c.weights:
                d = with_weights(d, c.weights)
        weights = np.array([k.weight for k in d.kinds])
        kind = d.kinds[int(rng.choice(len(d.kinds), p=weights / weights.sum()))]
        for c in active:
            if c.kind == kind.name:
                if c.refusal is not None:
                    kind = replace(kind, refusal=c.refusal)
                if c.tool:
                    kind = replace(kind, tools={**kind.tools, c.tool: c.tool_rate})
        refused = bool(rng.random() < kind.refusal)
        if refused:
            action = "refuse"
            tools: list[str] = []
        else:
            names = list(kind.actions)
            p = np.array([kind.actions[a] for a in names])
            action = names[int(rng.choice(len(names), p=p / p.sum()))]
            tools = [t for t, rate in kind.tools.items() if rng.random() < rate]
        text = writer.answer(kind, refused)
        latency = float(np.exp(rng.normal(7.0 + 0.3 * len(tools) + (0.0 if refused else 0.4), 0.4)))
        records.append({
            "decision_id": f"{domain.name}-{traffic[0]}{start + i}",
            "timestamp": 1_767_225_600 + (start + i) * 2 + (10_000_000 if traffic == "production" else 0),
            "model_id": domain.model_id,
            "traffic": traffic,
            "segment": domain.segments[int(rng.integers(len(domain.segments)))],
            "input": {"text": writer.request(kind)},
            "output": {"text": text, "refused": refused, "action": action,
                       "tool_calls": [{"name": t, "arguments": {}} for t in tools]},
            "latency_ms": round(latency, 1),
        })
        kinds.append(kind.name)
    return records, kinds


def generate(domain: Domain, *, seed: int, n_evaluation: int, n_production: int,
             changes: Sequence[Change] = (), evaluation_domain: Domain | None = None) -> Logs:
    """Evaluation and production logs of ``domain``; ``changes`` apply to production only.

    ``evaluation_domain`` (default: ``domain``) lets the evaluation traffic have another mix,
    e.g. a kind that is rare in evaluation and common in production.
    """
    rng = np.random.default_rng(seed)
    evaluation, eval_kinds = _records(evaluation_domain or domain, n_evaluation, "evaluation", rng, 0, ())
    production, prod_kinds = _records(domain, n_production, "production", rng, n_evaluation, tuple(changes))
    return Logs(evaluation, production, {"evaluation": eval_kinds, "production": prod_kinds}, domain,
                tuple(changes))
