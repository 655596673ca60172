#!/usr/bin/env python3
"""An independent log generator: 'PeopleDesk', an internal HR / benefits / IT-helpdesk assistant
for the employees of a mid-size company (offices in Berlin, Munich, Lisbon, Austin, Toronto, Warsaw).

Written by a teammate who had read Janus's docs but not its code or its own generators
(detector/simulate.py, detector/realistic.py), to test Janus on logs it was not built with: twelve
request kinds with their own refusal, tool and escalation rates; German and English; requests
wrapped in greetings, office and tenure context, pasted snippets, typos and sign-offs; 15% of
inputs are chats whose latest turn only refers to the request ("hmm that didn't work…");
markdown answers of 200–4,500 characters; refusals worded twenty ways, some indirectly. Janus is
measured on it (bench/independent.py), never tuned to it.

numpy only, seeded. Writes Janus decision records (JSONL) or OTLP/JSON GenAI spans.

usage: peopledesk_logs.py --seed S --n N --traffic evaluation|production --scenario NAME [--change-at 4000]
                          [--no-label] [--otlp] --out FILE
scenarios: none, mix2 (two rare kinds -> 50%), rare40 (relocation_visa -> 40%),
           refusal (colleague_data refusal .90 -> .45), tool (benefits open_hr_case .02 -> .15),
           longer (payroll answers 3x), hostile (none + ~1% malformed lines)
"""
import argparse, json, math, sys
import numpy as np

# ----------------------------------------------------------------------------- kinds
KINDS = {
    #  name: share, p_refuse, p_escalate, tools{name: p}, answer length (median chars), code block p, lat base ms, conf(a,b), de share
    "pto_balance":     dict(share=.15,   ref=.01, esc=.00, tools={"get_leave_balance": .92, "open_hr_case": .01}, L=320,  code=.0, lat=900,  conf=(18, 2), de=.25),
    "leave_request":   dict(share=.12,   ref=.03, esc=.02, tools={"get_leave_balance": .5, "create_leave_request": .7, "notify_manager": .3}, L=450, code=.0, lat=1400, conf=(12, 2), de=.25),
    "password_reset":  dict(share=.13,   ref=.04, esc=.01, tools={"verify_identity": .8, "reset_password": .6, "create_it_ticket": .15}, L=420, code=.15, lat=1100, conf=(14, 2), de=.2),
    "it_troubleshoot": dict(share=.12,   ref=.01, esc=.03, tools={"search_kb": .6, "create_it_ticket": .35, "run_diagnostics": .2}, L=950, code=.6, lat=2600, conf=(6, 3), de=.0),
    "benefits":        dict(share=.10,   ref=.02, esc=.04, tools={"search_policy": .8, "open_hr_case": .02}, L=700, code=.0, lat=1900, conf=(9, 3), de=.0),
    "payroll":         dict(share=.10,   ref=.05, esc=.10, tools={"get_payslip": .55, "open_hr_case": .10}, L=520, code=.05, lat=1500, conf=(10, 3), de=.3),
    "colleague_data":  dict(share=.10,   ref=.90, esc=.02, tools={"lookup_directory": .08}, L=300, code=.0, lat=800, conf=(8, 3), de=.0),
    "software_access": dict(share=.08,   ref=.25, esc=.02, tools={"request_access": .5, "create_it_ticket": .2}, L=480, code=.2, lat=1300, conf=(9, 3), de=.0),
    "expense_policy":  dict(share=.075,  ref=.02, esc=.01, tools={"search_policy": .85}, L=600, code=.0, lat=1600, conf=(11, 3), de=.0),
    "harassment":      dict(share=.015,  ref=.05, esc=.85, tools={"open_hr_case": .85}, L=650, code=.0, lat=1800, conf=(7, 4), de=.0),
    "policy_bypass":   dict(share=.015,  ref=.80, esc=.05, tools={"create_it_ticket": .03}, L=280, code=.0, lat=900, conf=(7, 3), de=.0),
    "relocation_visa": dict(share=.0015, ref=.10, esc=.30, tools={"open_hr_case": .5, "search_policy": .6}, L=1100, code=.0, lat=2800, conf=(5, 4), de=.0),
}
KN = list(KINDS)

NAMES = ["Tomasz", "Ana", "Priya", "Jonas", "Mehmet", "Sofia", "Liam", "Chen", "Marta", "Kofi", "Elena", "Raj",
         "Lena", "Diego", "Aisha", "Felix", "Olga", "Noah", "Inês", "Yuki", "Hannah", "Bartek", "Carla", "Omar"]
OFFICES = ["Berlin", "Munich", "Lisbon", "Austin", "Toronto", "Warsaw", "the Hamburg satellite office", "remote (Porto)"]
TEAMS = ["finance", "sales", "the data platform team", "customer success", "marketing", "legal", "the warehouse ops team",
         "mobile", "procurement", "design", "QA", "facilities", "recruiting", "the SRE team", "payments"]
TENURE = ["joined last month", "started two weeks ago", "have been here 3 years", "just came back from parental leave",
          "am a contractor converting to FTE", "moved teams in January", "am on probation still", "am new-ish (4 months)",
          "have been here since 2019", "just got promoted to team lead"]
GREET = ["hi", "Hi!", "hello", "Hey there,", "Good morning", "morning!", "Hi PeopleDesk,", "hey", "Hallo", "hi bot",
         "Hello team,", "Yo", "good afternoon,", "Hi there", "Hey,", "", "", "", "", "", "Dear HR assistant,", "hiya",
         "Hi, quick one:", "Sorry to bother,", "Hello again", "hey :)", "Hi —", "ok so", "Greetings,", "hi hi"]
SIGN = ["thanks!", "Thanks in advance", "thx", "cheers", "Many thanks,\nAna", "ty", "thanks a lot :)", "", "", "", "",
        "BR, Jonas", "Best,\nPriya", "appreciate it", "thank you!!", "Thanks - Mehmet", "kind regards", "cheers, T.",
        "much appreciated 🙏", "merci", "thanks, have a good one", "Sent from my iPhone", "-- \nLiam | Sales EMEA"]
GREET_DE = ["Hallo", "Hi", "Guten Morgen", "Moin", "Servus", "Hallo zusammen,", "", "", "Guten Tag,"]
SIGN_DE = ["Danke!", "Vielen Dank", "LG", "Viele Grüße\nLena", "danke dir", "", "", "Beste Grüße, Felix", "Dankeschön"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"]
SYSTEMS = ["Workday", "SAP SuccessFactors", "the Jira service desk", "Okta", "GlobalProtect", "Slack", "Outlook", "Figma",
           "Tableau", "GitHub Enterprise", "Salesforce", "Zoom", "the expense tool (Concur)", "Confluence", "Docker Desktop"]

REQ = {
    "pto_balance": [
        "how many vacation days do I have left this year?", "can you check my PTO balance", "what's my remaining annual leave?",
        "how much holiday have I got left for {y}", "do i still have carry-over days from last year? when do they expire",
        "I want to know my leave balance before booking a trip in {m}", "how many sick days have I used so far",
        "is my overtime compensated as extra days off and how many do I have", "check my remaining vacation pls",
        "how many days of annual leave do I accrue per month?"],
    "leave_request": [
        "please book {n} days of vacation from {d} {m}", "I need to take leave from {d} {m} to {d2} {m}, can you submit it",
        "can I request a half day on friday?", "submit a parental leave request starting {m} {y}",
        "i want to book unpaid leave for {n} weeks in {m}", "cancel my vacation request for {d} {m} please",
        "I'd like to take {n} days off next week for a family thing", "how do I apply for sabbatical leave, and can you start it",
        "register me as sick today, I have the flu", "move my holiday from {m} to {m2}"],
    "password_reset": [
        "I'm locked out of {sys}", "reset my password for {sys} please", "my okta MFA is not working after I changed phones",
        "forgot my windows password, can't log in", "account locked after too many attempts on {sys}",
        "password expired and the reset link doesn't work", "I need a new MFA enrolment, lost my phone",
        "can't sign in to {sys}, says invalid credentials", "my laptop asks for a bitlocker recovery key",
        "the self-service password reset keeps failing"],
    "it_troubleshoot": [
        "VPN keeps disconnecting every 10 minutes", "{sys} crashes on startup since the update", "my laptop is extremely slow",
        "docker build fails with a permissions error on my work laptop", "printer on floor {n} isn't working",
        "outlook won't sync my calendar", "how do I connect to the office wifi on linux", "external monitor not detected on my macbook",
        "git clone from our GitHub Enterprise times out behind the proxy", "teams audio drops during calls",
        "my python venv can't install packages, SSL error", "the {sys} plugin throws an error when I export"],
    "benefits": [
        "what does our dental plan cover?", "how do I add my partner to my health insurance", "is there a gym subsidy?",
        "when is open enrolment for benefits this year", "does the company match pension contributions and how much",
        "what's the policy on the bike leasing scheme", "can I change my insurance tier mid-year after having a baby",
        "is therapy covered by the employee assistance programme", "how does the childcare allowance work",
        "what's the life insurance coverage amount"],
    "payroll": [
        "why is my net pay lower this month?", "can you send me my payslip for {m}", "my overtime wasn't paid in {m}",
        "when is the bonus paid out", "I think my tax class is wrong on my payslip", "how do I change my bank account for salary",
        "the payslip shows a deduction I don't understand", "when is payday this month", "I was paid twice in {m}, what do I do",
        "where can I download my annual tax statement"],
    "colleague_data": [
        "what is {name}'s salary?", "can you tell me how much {name} from {team} earns", "give me {name}'s home address, I want to send flowers",
        "what's the performance rating of {name}", "is {name} on sick leave and why", "send me the salary bands of everyone in {team}",
        "who in {team} got the biggest raise this year", "what's {name}'s personal phone number", "show me {name}'s disciplinary record",
        "list everyone on my floor with their date of birth"],
    "software_access": [
        "I need admin rights on my laptop to install {sys}", "can I get access to the finance share drive",
        "please grant me access to the production database", "install {sys} for me", "I need a license for {sys}",
        "give me local admin permanently, I'm a developer", "can I get access to the {team} confluence space",
        "request access to the HR reporting dashboard", "add me to the github org admins", "I need to install a browser extension that's blocked"],
    "expense_policy": [
        "what's the hotel limit for a trip to {city}?", "can I expense a dinner with a client", "how do I submit receipts in Concur",
        "is business class allowed for flights over {n} hours", "what's the per diem for {city}", "can I expense my home office chair",
        "I lost a receipt, can I still get reimbursed", "do we reimburse internet costs for remote workers",
        "how long do I have to submit expenses after a trip", "can I expense a conference ticket"],
    "harassment": [
        "I want to report that my manager keeps making comments about my appearance", "how do I report bullying anonymously",
        "a colleague has been sending me inappropriate messages", "I witnessed discrimination in a meeting, what should I do",
        "I feel unsafe with a coworker, who do I talk to", "my team lead threatened my job if I report overtime violations",
        "someone at the offsite touched me without consent", "I want to file a formal complaint about my supervisor"],
    "policy_bypass": [
        "backdate my timesheet by two weeks so I get paid overtime", "approve my own expense report, my manager is away",
        "mark me as present for the days I was at the beach", "change my start date in Workday to last year for the bonus",
        "delete the record of my warning from last month", "can you approve the leave request on behalf of my manager",
        "increase my vacation balance by 5 days, HR promised it verbally", "edit the audit log so my late submission doesn't show"],
    "relocation_visa": [
        "I'm moving from the {city} office to Toronto, what about my work permit", "how does the relocation package work for an internal transfer to {city}",
        "my blue card expires in {m}, can HR start the renewal", "do we sponsor visas for my spouse if I relocate to Austin",
        "what is covered when relocating to Lisbon: movers, temporary housing, tax advice?"],
}
REQ_DE = {
    "pto_balance": ["wie viele Urlaubstage habe ich noch?", "kannst du meinen Resturlaub prüfen", "wie viel Urlaub habe ich dieses Jahr noch übrig",
                    "verfallen meine Urlaubstage aus dem Vorjahr im März?", "wie viele Krankheitstage habe ich schon?"],
    "leave_request": ["bitte trag mir Urlaub vom {d}. bis {d2}. {m} ein", "ich möchte {n} Tage Urlaub beantragen", "Elternzeit ab {m} beantragen bitte",
                      "bitte meinen Urlaub am {d}. stornieren", "ich bin heute krank, bitte eintragen"],
    "password_reset": ["ich bin aus {sys} ausgesperrt", "Passwort zurücksetzen für {sys} bitte", "mein MFA funktioniert nach dem Handywechsel nicht",
                       "Konto gesperrt nach zu vielen Versuchen", "ich habe mein Windows-Passwort vergessen"],
    "payroll": ["warum ist mein Netto diesen Monat niedriger?", "kannst du mir die Gehaltsabrechnung für {m} schicken", "meine Überstunden wurden im {m} nicht bezahlt",
                "meine Steuerklasse auf der Abrechnung ist falsch", "wann wird das Gehalt diesen Monat überwiesen"],
}
SNIPPETS = {
    "it_troubleshoot": ["```\nERROR: failed to solve: process \"/bin/sh -c pip install -r requirements.txt\" did not complete successfully: exit code: 1\n```",
                        "error: RPC failed; curl 28 Failed to connect to github.corp.example.com port 443 after {n}000 ms: Timeout was reached",
                        "GlobalProtect: Gateway vpn-eu-{n}.corp.example.com: Authentication failed (error 0x{hx})",
                        "```\nssl.SSLCertVerificationError: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self signed certificate in certificate chain\n```",
                        "Event ID 41 Kernel-Power, the system has rebooted without cleanly shutting down first"],
    "payroll": ["Gross: {n}.{d}12,50 EUR | Tax class: 1 | Church tax: 0,00 | Health ins.: 3{d}4,21", "payslip line 'SV-Nachberechnung -{n}{d},00' ?",
                "Net pay {m}: {n},{d}40.10 / previous month {n},{d2}88.03"],
    "expense_policy": ["Receipt: Hotel Adlon Kempinski, 2 nights, 612.00 EUR incl. breakfast", "Uber receipt #{hx} 43.20 USD airport -> hotel"],
    "password_reset": ["Error: AADSTS50053: The account is locked, you've tried to sign in too many times with an incorrect user ID or password."],
    "software_access": ["Your administrator has blocked this application. Ref: APPLOCKER-{hx}"],
    "leave_request": ["(calendar: OOO {d} {m} - {d2} {m}, approved by ?)"],
}
FOLLOW_SHORT = ["ok do it", "yes please", "go ahead", "sure", "yep, thanks", "ok!", "please proceed", "ja, bitte", "do it", "yes"]
FOLLOW_LONG = ["and could you do the same for my manager too?", "thanks — can you also send me the link to that page?",
               "great, please go ahead and submit it for next week then", "what if I'm working part-time, does that change anything?",
               "ok and how long will that take to be processed?", "hmm that didn't work, I still get the same thing",
               "can you put that in an email to me so I have it in writing", "and for my colleague who is in the Lisbon office?"]
PREV_ASSIST = ["I can help with that. Before I proceed, can you confirm your employee ID?", "Sure — do you want me to submit it now?",
               "Here is what I found. Shall I open a ticket for you?", "I can look that up. Which period do you mean?",
               "Got it. Should I go ahead with the default option?"]

# answer building blocks ------------------------------------------------------------------------
INTRO = {
    "pto_balance": ["Here's your current leave balance:", "I checked {sys_hr} for you.", "According to your leave account as of today:", "Sure! Your balance:"],
    "leave_request": ["I've prepared your leave request.", "Done — the request is in {sys_hr}.", "Here's how your request looks:", "I submitted the following:"],
    "password_reset": ["Let's get you back in.", "I've started a reset for your account.", "No problem, here's what to do:", "Your account was locked; I've taken care of the first step."],
    "it_troubleshoot": ["Sorry you're running into this. Let's troubleshoot step by step.", "This is a known issue with the latest client.", "Here are the steps that usually fix this:", "Thanks for the details — the error points to a proxy/certificate problem."],
    "benefits": ["Good question! Here's a summary of the policy:", "Our benefits handbook says the following:", "Here's what the plan includes:", "Happy to explain."],
    "payroll": ["I looked at your payslip.", "Here's a breakdown:", "Payroll questions can be tricky — here is what I see:", "Thanks for flagging this."],
    "colleague_data": ["Here is the public directory entry:", "I can share what's in the company directory:", "From the org chart:"],
    "software_access": ["I've raised an access request.", "Here's how access works for that system:", "I can help you request that."],
    "expense_policy": ["According to the travel & expense policy (v{n}.{d}):", "Here are the rules:", "Short answer: yes, with limits."],
    "harassment": ["I'm really sorry this is happening, and thank you for telling me.", "What you describe is serious and you did the right thing by raising it.", "Thank you for reaching out. Your safety matters."],
    "policy_bypass": ["I can explain the correct process instead:", "Here's how corrections normally work:"],
    "relocation_visa": ["Relocation involves a few teams, so here is the overview:", "Congrats on the move! Here's what our mobility policy covers:", "Here is how internal transfers work:"],
}
BULLET = {
    "pto_balance": ["**Annual leave:** {n} days remaining of {n2}", "**Carry-over:** {d} days, expiring 31 March", "**Sick days used:** {d}", "Pending requests: {d}",
                    "Overtime compensation: {d} hours banked", "Your accrual rate is 2.5 days per month", "Public holidays in {city} are not deducted"],
    "leave_request": ["Dates: {d} {m} – {d2} {m}", "Working days: {n}", "Approver: your manager ({name})", "Status: *pending approval*", "Balance after approval: {n2} days",
                      "Your manager gets a notification in Slack", "You can withdraw it until it's approved"],
    "password_reset": ["Open https://id.corp.example.com/reset", "Verify with the code sent to your backup email", "Choose a new password (min. 14 chars, no reuse of last 5)",
                       "Re-enrol MFA in Okta Verify", "If it still fails, your ticket number is INC{n}{d}{d2}", "Restart your laptop while connected to the VPN so the cached credentials update",
                       "BitLocker key ID: {hx}…"],
    "it_troubleshoot": ["Update the client to the latest version from Self Service", "Restart the `netsvc` service", "Clear the credential cache", "Check that the proxy is set to `proxy.corp.example.com:8080`",
                        "Import the corporate root CA into your trust store", "Disable IPv6 on the adapter temporarily", "Collect logs with the diagnostics tool and attach them to the ticket",
                        "Try the wired connection to rule out wifi", "Run the compliance check again", "If none of this helps, I've opened INC{n}{d}{d2}"],
    "benefits": ["Preventive care is covered at 100%", "Orthodontics up to 1,500 EUR per year", "Partners can be added within 30 days of a life event", "Open enrolment runs 1–30 November",
                 "Pension matching: up to {d}% of base salary", "Bike leasing via salary conversion, up to 3 bikes", "EAP: 6 free therapy sessions per year",
                 "Childcare allowance: up to {n}0 EUR/month tax-free", "Gym subsidy: 30 EUR/month with Urban Sports Club"],
    "payroll": ["Gross salary unchanged", "One-off deduction: **company car benefit** ({n}{d},00)", "Tax class on file: {d}", "Overtime from {m} will be paid with next month's run",
                "Payday is the last working day of the month", "Bank details can be changed in {sys_hr} → Pay → Payment elections", "Bonus is paid with the March payroll",
                "Annual tax statement is available under Documents"],
    "colleague_data": ["Name: {name}", "Team: {team}", "Office: {city}", "Work email: firstname.lastname@corp.example.com", "Manager: {name2}"],
    "software_access": ["Request ID: RITM{n}{d}{d2}", "Approver: system owner", "Typical turnaround: 1–2 business days", "Local admin is granted via Privilege Management for 30 min sessions",
                        "Licenses are assigned from the shared pool"],
    "expense_policy": ["Hotel cap in {city}: {n}0 EUR per night", "Client dinners: up to 80 EUR per person with attendee list", "Economy for flights under 6 hours",
                       "Per diem: {n}8 EUR", "Missing receipts: submit a signed declaration", "Submit within 60 days", "Home office equipment up to 500 EUR once every 3 years"],
    "harassment": ["You can report confidentially to your HR Business Partner", "Our Speak-Up line is anonymous: speakup.corp.example.com", "Retaliation is prohibited under our Code of Conduct",
                   "Write down dates, times and what was said", "I've opened a confidential case (HR-{n}{d}{d2}); someone from Employee Relations will contact you within 24h",
                   "If you are in immediate danger, call local emergency services"],
    "policy_bypass": ["Timesheet corrections go through your manager in {sys_hr}", "Expense approvals need a different approver than the submitter", "HR can correct records when there is documentation"],
    "relocation_visa": ["Work permit: our immigration partner will contact you", "Temporary housing up to 30 days", "Movers: one container, insured", "Tax advice: 2 sessions with our provider",
                        "Spouse visa support depends on the destination country", "Timeline: 8–12 weeks", "Your case number: MOB-{n}{d}{d2}", "Language classes budget: 1,000 EUR"],
}
CLOSE = ["Let me know if you need anything else!", "Anything else I can help with?", "Hope that helps.", "", "Feel free to reply here if something's unclear.",
         "_This answer is based on the policy in force today._", "Have a great day!", "If this doesn't solve it, reply and I'll escalate."]
CODE = ["```powershell\nGet-Service netsvc | Restart-Service -Force\nipconfig /flushdns\n```",
        "```bash\nsudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain corp-root-ca.pem\n```",
        "```bash\ngit config --global http.proxy http://proxy.corp.example.com:8080\ngit config --global http.sslCAInfo ~/corp-root-ca.pem\n```",
        "```\npip config set global.cert /etc/ssl/certs/corp-root-ca.pem\n```",
        "```powershell\nmanage-bde -protectors -get C:\n```"]
INTRO_DE = ["Hier ist die Übersicht:", "Ich habe das für dich geprüft.", "Erledigt — die Details:", "Gerne, hier die Infos:"]
BULLET_DE = ["Resturlaub: {n} Tage", "Übertrag aus dem Vorjahr: {d} Tage (verfällt am 31.03.)", "Status: *in Prüfung*", "Genehmiger: {name}",
             "Neues Passwort über https://id.corp.example.com/reset setzen", "MFA in Okta Verify neu einrichten", "Steuerklasse laut System: {d}",
             "Überstunden werden mit der nächsten Abrechnung ausgezahlt", "Gehalt wird am letzten Arbeitstag überwiesen"]
CLOSE_DE = ["Melde dich gerne, wenn du noch Fragen hast!", "Viele Grüße, dein PeopleDesk", "", "Kann ich sonst noch helfen?"]

# refusals: many wordings; a part are indirect (deflections) as real assistants write them
REF_EN = ["I'm sorry, but I can't share that.", "I can't help with that request.", "Unfortunately I'm not able to do that.",
          "I'm afraid I can't provide that information.", "That's not something I can help with.", "I won't be able to look that up for you.",
          "Sorry, I'm not allowed to access other employees' records.", "I have to decline this one.", "I'm not able to make that change.",
          "Sharing that would go against our data-protection policy.", "I can't do that, sorry.", "I'm not in a position to approve or change that.",
          "Sorry — that information is restricted to HR Business Partners and isn't available through this assistant.",
          "This isn't something PeopleDesk can process.", "That request is outside of what I'm permitted to do.",
          "Personal data about colleagues is confidential, so I'll leave that one.", "No, sorry - that's not possible here.",
          "I'd rather not - that would breach the Code of Conduct.", "Hmm, that one needs a human: changes like this can only be made by HR Operations with a documented reason."]
REF_REASON = {"colleague_data": ["Compensation, health and contact details of colleagues are protected under GDPR and our privacy policy.",
                                 "Only the employee themselves and authorised HR staff can see that.", "Salary information is confidential."],
              "policy_bypass": ["Records must reflect what actually happened, and self-approval isn't permitted.", "That would violate our internal controls (SOX segregation of duties)."],
              "software_access": ["Production access requires a manager-approved request and security review.", "Permanent local admin rights aren't granted on managed devices."]}
REF_REDIRECT = ["If you have a legitimate business need, please contact your HR Business Partner.", "You can raise it with your manager.",
                "For anything else, I'm happy to help!", "", "The people team can be reached at people@corp.example.com.", "Is there something else I can do for you?"]
REF_DE = ["Dabei kann ich Ihnen leider nicht helfen.", "Das darf ich leider nicht weitergeben.", "Das ist mir leider nicht möglich.", "Ich kann das leider nicht ändern."]

REASONING = ["The user asks about {k}. {plan}", "Intent: {k}. {plan} Policy check passed.", "Classified as {k}; {plan}", "{plan} (topic: {k})"]
PLAN = {"tool": ["I'll call the relevant tool and summarise.", "Fetch the data via tools, then answer.", "Use the HR system API to retrieve it."],
        "ref": ["This request concerns data or actions the user is not entitled to; decline politely.", "Policy forbids this; refuse and redirect.", "Must decline."],
        "esc": ["Sensitive topic; open a case and hand off to HR.", "Escalate to a human."],
        "ans": ["Answer from the policy knowledge base.", "Explain the steps.", "Give a concise answer."]}
CITIES = ["Berlin", "Munich", "Lisbon", "Austin", "Toronto", "Warsaw", "London", "New York", "Paris", "Singapore"]


class Gen:
    def __init__(self, seed, scenario, change_at, label=True):
        self.r = np.random.default_rng(seed)
        self.scn, self.change_at, self.label = scenario, change_at, label
        self.t0 = 1772323200.0 + (seed % 97) * 86400  # 2026-03-01 + offset

    def pick(self, seq):
        return seq[int(self.r.integers(len(seq)))]

    def fill(self, s):
        r = self.r
        if "{" not in s:
            return s
        m = int(r.integers(12))
        return s.format(n=int(r.integers(2, 15)), n2=int(r.integers(20, 31)), d=int(r.integers(1, 10)), d2=int(r.integers(10, 29)),
                        m=MONTHS[m], m2=MONTHS[(m + 1) % 12], y=int(r.integers(2026, 2028)), name=self.pick(NAMES), name2=self.pick(NAMES),
                        team=self.pick(TEAMS), sys=self.pick(SYSTEMS), city=self.pick(CITIES), hx="%06x" % int(r.integers(16 ** 6)),
                        sys_hr=self.pick(["Workday", "SuccessFactors", "the HR portal"]), k="?")

    def typo(self, s):
        r = self.r
        if r.random() > 0.35 or len(s) < 8:
            return s
        s = list(s)
        for _ in range(int(r.integers(1, 4))):
            i = int(r.integers(1, len(s) - 1))
            op = r.integers(3)
            if op == 0:
                s[i - 1], s[i] = s[i], s[i - 1]
            elif op == 1:
                del s[i]
            else:
                s.insert(i, s[i])
        return "".join(s)

    def shares(self, i):
        w = np.array([KINDS[k]["share"] for k in KN], float)
        w /= w.sum()
        if i >= self.change_at:
            if self.scn == "mix2":
                tgt = {"harassment": .25, "policy_bypass": .25}
            elif self.scn == "rare40":
                tgt = {"relocation_visa": .40}
            else:
                tgt = None
            if tgt:
                rest = 1 - sum(tgt.values())
                idx = [KN.index(k) for k in tgt]
                others = [j for j in range(len(KN)) if j not in idx]
                w2 = np.zeros_like(w)
                w2[others] = w[others] / w[others].sum() * rest
                for k, v in tgt.items():
                    w2[KN.index(k)] = v
                w = w2
        return w

    def request(self, kind, de):
        r = self.r
        if de:
            core = self.fill(self.pick(REQ_DE[kind]))
            parts = [self.pick(GREET_DE), core]
            if r.random() < .3:
                parts.insert(1, self.pick(["Ich bin im Berliner Büro.", "Ich arbeite in Teilzeit (80%).", "Bin seit Januar im Team " + self.pick(TEAMS) + ".", "Kurze Frage:"]))
            parts.append(self.pick(SIGN_DE))
        else:
            core = self.fill(self.pick(REQ[kind]))
            if r.random() < .15:
                core = core.lower()
            elif r.random() < .3:
                core = core[0].upper() + core[1:]
            parts = [self.pick(GREET)]
            if r.random() < .45:
                parts.append(self.pick(["I'm in the {} office and {}.", "I work in {} ({}).", "Context: {} office, I {}.", "FYI I'm based in {} and {}."]).format(
                    self.pick(OFFICES), self.pick(TENURE)) if r.random() < .6 else "I'm on " + self.pick(TEAMS) + ", " + self.pick(TENURE) + ".")
            parts.append(self.typo(core))
            if kind in SNIPPETS and r.random() < .35:
                parts.append(self.fill(self.pick(SNIPPETS[kind])))
            if r.random() < .2:
                parts.append(self.pick(["It's kind of urgent.", "No rush.", "I already asked my manager but no answer.", "My colleague said you could help.",
                                        "I tried the portal but it's confusing.", "This is the second time I'm asking.", "(sorry for the typos, on mobile)"]))
            parts.append(self.pick(SIGN))
        sep = self.pick([" ", "\n", "\n\n", " "])
        text = sep.join(p for p in parts if p)
        # multi-turn: the request is an earlier turn
        if r.random() < .15:
            fol = self.pick(FOLLOW_SHORT) if r.random() < .6 else self.pick(FOLLOW_LONG)
            text = "User: {}\nAssistant: {}\nUser: {}".format(text, self.pick(PREV_ASSIST), fol)
        return text

    def answer(self, kind, de, refused, tools, esc, longer):
        r, K = self.r, KINDS[kind]
        if refused:
            if de:
                s = self.pick(REF_DE) + " " + self.pick(["Bitte wende dich an HR.", "Für Fragen ist das People-Team da.", ""])
            else:
                s = " ".join(x for x in [self.pick(REF_EN), self.pick(REF_REASON.get(kind, [""])) if r.random() < .7 else "", self.pick(REF_REDIRECT)] if x)
            return s
        target = K["L"] * math.exp(r.normal(0, .35)) * (3 if longer else 1)
        target = min(max(target, 200), 4500)
        if de and kind in REQ_DE:
            lines = [self.pick(INTRO_DE)]
            pool, close = BULLET_DE, CLOSE_DE
        else:
            lines = [self.fill(self.pick(INTRO[kind]))]
            pool, close = BULLET[kind], CLOSE
        if esc and kind != "harassment":
            lines.append("I've passed this to a colleague in HR Operations who will follow up with you directly.")
        bullet = self.pick(["- ", "* ", "1. "])
        n = 0
        while sum(len(x) + 1 for x in lines) < target - 60:
            b = self.fill(self.pick(pool))
            lines.append((bullet if not bullet[0].isdigit() else f"{n + 1}. ") + b)
            n += 1
            if n % 4 == 0 and r.random() < .5:
                lines.append("")
                lines.append(self.pick(["**Note:**", "### Details", "Also worth knowing:", "Next steps:", "> Tip: you can also do this yourself in the portal."]))
            if K["code"] and r.random() < K["code"] / 3:
                lines.append(self.pick(CODE))
        c = self.pick(close)
        if c:
            lines.append(c)
        return "\n".join(lines)

    def record(self, i, traffic, t):
        r = self.r
        w = self.shares(i)
        kind = KN[int(r.choice(len(KN), p=w))]
        K = KINDS[kind]
        de = r.random() < K["de"]
        p_ref, tools_p = K["ref"], dict(K["tools"])
        longer = False
        if i >= self.change_at:
            if self.scn == "refusal" and kind == "colleague_data":
                p_ref = .45
            if self.scn == "tool" and kind == "benefits":
                tools_p["open_hr_case"] = .15
            if self.scn == "longer" and kind == "payroll":
                longer = True
        refused = r.random() < p_ref
        esc = (not refused) and r.random() < K["esc"]
        calls = []
        if not refused:
            for name, p in tools_p.items():
                if r.random() < p:
                    calls.append({"name": name, "arguments": self.args(name)})
        elif r.random() < .03:
            calls.append({"name": "log_policy_event", "arguments": {"category": kind, "severity": "low"}})
        text = self.answer(kind, de, refused, calls, esc, longer)
        action = "decline" if refused else ("escalate_to_hr" if esc else ("use_tools" if calls else "answer"))
        lat = (K["lat"] + 0.9 * len(text) + 450 * len(calls)) * math.exp(r.normal(0, .3))
        conf = float(r.beta(*K["conf"]))
        plan = PLAN["ref" if refused else "esc" if esc else "tool" if calls else "ans"]
        reasoning = self.pick(REASONING).format(k=kind.replace("_", " "), plan=self.pick(plan))
        out = {"text": text, "action": action}
        if self.label:
            out["refused"] = bool(refused)
        if calls:
            out["tool_calls"] = calls
        if r.random() > .03:
            out["confidence"] = round(conf, 3)
        rec = {"decision_id": "pd-%s-%012x" % (traffic[:4], int(r.integers(2 ** 48))),
               "timestamp": self.ts(t), "model_id": "peopledesk-assistant", "model_version": "2026.03.1",
               "traffic": traffic, "segment": self.pick(["slack", "slack", "slack", "portal", "portal", "teams"]),
               "input": {"text": self.request(kind, de)}, "output": out}
        if r.random() > .05:
            rec["reasoning"] = reasoning
        if r.random() > .005:
            rec["latency_ms"] = round(lat, 1)
        if r.random() < .02:
            rec["client"] = {"app_version": "4.%d.%d" % (r.integers(10), r.integers(30)), "locale": self.pick(["en-GB", "de-DE", "pt-PT", "en-US"])}
        return rec, (kind, bool(refused))

    def ts(self, t):
        z = self.pick(["Z", "+00:00", "Z", "Z"])
        import datetime
        d = datetime.datetime.fromtimestamp(t, datetime.timezone.utc)
        return d.strftime("%Y-%m-%dT%H:%M:%S.") + "%03d" % (int(t * 1000) % 1000) + z

    def args(self, name):
        r = self.r
        emp = "E%05d" % int(r.integers(100000))
        a = {"get_leave_balance": {"employee_id": emp, "as_of": "2026-%02d-01" % r.integers(1, 13)},
             "create_leave_request": {"employee_id": emp, "start": "2026-%02d-%02d" % (r.integers(1, 13), r.integers(1, 28)), "days": int(r.integers(1, 15)), "type": self.pick(["annual", "unpaid", "sick", "parental"])},
             "notify_manager": {"employee_id": emp, "channel": self.pick(["slack", "email"])},
             "verify_identity": {"employee_id": emp, "method": self.pick(["sms", "email", "manager"])},
             "reset_password": {"employee_id": emp, "system": self.pick(SYSTEMS), "force_mfa_reenrol": bool(r.random() < .4)},
             "create_it_ticket": {"summary": self.pick(REQ["it_troubleshoot"])[:60], "priority": self.pick(["P3", "P3", "P2", "P4"]), "tags": ["peopledesk"]},
             "search_kb": {"query": self.pick(REQ["it_troubleshoot"]), "top_k": 5},
             "run_diagnostics": {"device": "LT-%04d" % r.integers(10000), "checks": ["network", "disk", "cert"][: int(r.integers(1, 4))]},
             "search_policy": {"query": self.pick(REQ["benefits"] + REQ["expense_policy"]), "country": self.pick(["DE", "PT", "US", "CA", "PL"])},
             "open_hr_case": {"employee_id": emp, "category": self.pick(["benefits", "payroll", "employee_relations", "mobility"]), "confidential": bool(r.random() < .5)},
             "get_payslip": {"employee_id": emp, "period": "2026-%02d" % r.integers(1, 13)},
             "lookup_directory": {"name": self.pick(NAMES), "fields": ["team", "office", "manager"]},
             "request_access": {"resource": self.pick(SYSTEMS), "role": self.pick(["viewer", "editor", "admin"]), "justification": "requested via PeopleDesk"}}
        return a.get(name, {})

    def run(self, n, traffic):
        t = self.t0 + (0 if traffic == "evaluation" else 30 * 86400)
        out = []
        for i in range(n):
            t += float(self.r.exponential(45.0))
            out.append(self.record(i, traffic, t))
        return out


def otlp(rec):
    """One ExportTraceServiceRequest per decision (GenAI semconv v1.37 layout)."""
    import hashlib
    h = hashlib.sha256(rec["decision_id"].encode()).hexdigest()
    trace, span = h[:32], h[32:48]
    from datetime import datetime
    ts = rec["timestamp"].replace("Z", "+00:00")
    start = int(datetime.fromisoformat(ts).timestamp() * 1e9)
    end = start + int(rec.get("latency_ms", 1000) * 1e6)
    txt = rec["input"]["text"]
    msgs = []
    if txt.startswith("User: "):  # transcript -> structured messages
        for line in txt.split("\nAssistant: "):
            pass
        u1, rest = txt[6:].split("\nAssistant: ", 1)
        a1, u2 = rest.split("\nUser: ", 1)
        msgs = [{"role": "user", "parts": [{"type": "text", "content": u1}]},
                {"role": "assistant", "parts": [{"type": "text", "content": a1}]},
                {"role": "user", "parts": [{"type": "text", "content": u2}]}]
    else:
        msgs = [{"role": "user", "parts": [{"type": "text", "content": txt}]}]
    sysmsg = [{"type": "text", "content": "You are PeopleDesk, the internal HR and IT assistant. Be concise."}]
    out = rec["output"]
    parts = []
    if rec.get("reasoning"):
        parts.append({"type": "reasoning", "content": rec["reasoning"]})
    parts.append({"type": "text", "content": out["text"]})
    for c in out.get("tool_calls", []):
        parts.append({"type": "tool_call", "id": "call_" + h[:8], "name": c["name"], "arguments": c["arguments"]})
    outm = [{"role": "assistant", "parts": parts, "finish_reason": "tool_call" if out.get("tool_calls") else "stop"}]

    def kv(k, v):
        if isinstance(v, bool):
            return {"key": k, "value": {"boolValue": v}}
        if isinstance(v, int):
            return {"key": k, "value": {"intValue": str(v)}}
        if isinstance(v, float):
            return {"key": k, "value": {"doubleValue": v}}
        if isinstance(v, list):
            return {"key": k, "value": {"arrayValue": {"values": [{"stringValue": x} for x in v]}}}
        return {"key": k, "value": {"stringValue": v}}
    attrs = [kv("gen_ai.operation.name", "chat"), kv("gen_ai.provider.name", "azure.ai.openai"), kv("gen_ai.request.model", rec["model_id"]),
             kv("gen_ai.response.model", rec["model_id"] + "-2026-03-01"), kv("gen_ai.input.messages", json.dumps(msgs, ensure_ascii=False)),
             kv("gen_ai.output.messages", json.dumps(outm, ensure_ascii=False)), kv("gen_ai.system_instructions", json.dumps(sysmsg)),
             kv("gen_ai.usage.input_tokens", len(txt) // 4), kv("gen_ai.usage.output_tokens", len(out["text"]) // 4),
             kv("gen_ai.response.finish_reasons", [outm[0]["finish_reason"]]), kv("peopledesk.channel", rec["segment"])]
    spans = [{"traceId": trace, "spanId": span, "name": "chat " + rec["model_id"], "kind": 3,
              "startTimeUnixNano": str(start), "endTimeUnixNano": str(end), "attributes": attrs, "status": {}}]
    # an HTTP parent span (skipped by Janus) and a tool span
    spans.insert(0, {"traceId": trace, "spanId": h[48:64], "name": "POST /v1/ask", "kind": 2, "startTimeUnixNano": str(start - 5_000_000),
                     "endTimeUnixNano": str(end + 3_000_000), "attributes": [kv("http.request.method", "POST"), kv("http.route", "/v1/ask")]})
    spans[1]["parentSpanId"] = h[48:64]
    res = {"attributes": [kv("service.name", "peopledesk"), kv("deployment.environment.name", rec["traffic"]), kv("service.version", "2026.03.1")]}
    return {"resourceSpans": [{"resource": res, "scopeSpans": [{"scope": {"name": "opentelemetry.instrumentation.openai_v2", "version": "2.1b0"}, "spans": spans}]}]}


def hostile(recs, r):
    """Return list of raw lines (bytes) with ~1% hostile lines mixed in (inserted, not replacing)."""
    lines = []
    n = len(recs)
    bad_at = set(r.choice(n, size=n // 100, replace=False).tolist())
    kinds_used = {}
    for i, rec in enumerate(recs):
        lines.append(json.dumps(rec, ensure_ascii=False).encode())
        if i in bad_at:
            k = int(r.integers(10))
            kinds_used[k] = kinds_used.get(k, 0) + 1
            b = dict(rec)
            b["decision_id"] = rec["decision_id"] + "-x%d" % i
            if k == 0:
                s = json.dumps(b).encode()
                lines.append(s[: int(r.integers(10, len(s) - 1))])  # truncated JSON
            elif k == 1:
                b["latency_ms"] = "1200ms"; lines.append(json.dumps(b).encode())  # wrong type
            elif k == 2:
                b["output"] = dict(b["output"]); b["output"]["refused"] = "no"; lines.append(json.dumps(b).encode())
            elif k == 3:
                b["input"] = {"text": "A" * 1_000_000}; lines.append(json.dumps(b).encode())  # huge string
            elif k == 4:
                a = {"x": 1}
                for _ in range(40):
                    a = {"nested": a}
                b["output"] = dict(b["output"]); b["output"]["tool_calls"] = [{"name": "search_kb", "arguments": a}]
                lines.append(json.dumps(b).encode())
            elif k == 5:
                b["output"] = dict(b["output"]); b["output"]["confidence"] = float("nan"); lines.append(json.dumps(b).encode())  # NaN literal
            elif k == 6:
                s = json.dumps(b, ensure_ascii=False).encode()
                j = s.find(b'"text": "') + 9
                lines.append(s[:j] + b"\xff\xfe\xc3(" + s[j:])  # invalid UTF-8
            elif k == 7:
                lines.append(json.dumps(rec).encode())  # exact duplicate decision_id (retry)
            elif k == 8:
                b["timestamp"] = "2025-01-01T00:00:00Z"; b["decision_id"] = rec["decision_id"] + "-old"
                lines.append(json.dumps(b).encode())  # far out-of-order timestamp, otherwise valid
            else:
                b["extra"] = {"foo": [1, 2, {"bar": None}]}; b["output"] = dict(b["output"]); b["output"]["unknown_field"] = 1
                b["latency_ms"] = -5 if r.random() < .5 else 1e12
                lines.append(json.dumps(b).encode())
    sys.stderr.write("hostile kinds: %s\n" % sorted(kinds_used.items()))
    return lines


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--traffic", default="production")
    ap.add_argument("--scenario", default="none")
    ap.add_argument("--change-at", type=int, default=4000)
    ap.add_argument("--no-label", action="store_true")
    ap.add_argument("--otlp", action="store_true")
    ap.add_argument("--kinds-out")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    g = Gen(a.seed, a.scenario, a.change_at if a.traffic == "production" else 10 ** 9, label=not a.no_label)
    pairs = g.run(a.n, a.traffic)
    recs = [p[0] for p in pairs]
    if a.kinds_out:
        with open(a.kinds_out, "w") as f:
            for rec, k in pairs:
                f.write(json.dumps({"id": rec["decision_id"], "kind": k[0], "refused": k[1]}) + "\n")
    with open(a.out, "wb") as f:
        if a.scenario == "hostile":
            for line in hostile(recs, np.random.default_rng(a.seed + 999)):
                f.write(line + b"\n")
        else:
            for rec in recs:
                f.write(json.dumps(otlp(rec) if a.otlp else rec, ensure_ascii=False).encode() + b"\n")


if __name__ == "__main__":
    main()
