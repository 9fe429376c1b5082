"""Clinical notes for a simulated cohort: what nurses and doctors would have written about
each patient's hidden course (models/cohort.py), as `ehr-notes.v1` events.

Why written from the hidden state and not from the vitals: a note is a second, partly
independent look at the patient, which is the only reason a text model can add anything
to the vitals model. Why this messy: a model is only as honest as its hardest cases, so
the notes hold what makes real ones hard. Findings are negated as often as asserted ("no
fever", "denies chest pain", "not confused") and hedged ("?early sepsis", "possibly
anxious"); sentences are copied forward from earlier notes after they stopped being true;
chronic problems read like acute ones (COPD on home oxygen, known AF, dementia, chronic
ankle oedema); benign episodes get alarming words and a doctor called to them (post-operative
fever, pain, nebulisers, sleep desaturation); early findings are vague ("feels warm", "a bit
muddled, ?new", "looks unwell", which a nurse now and then writes of a well patient); some
notes say almost nothing whatever the state; nurses miss signs; allied-health and
discharge-planning notes carry on planning a discharge while the patient gets worse;
arrests come without a word of warning. Admission notes carry a full history and a
medication list long enough to need more than one encoder window. Notes come more often
as a patient gets worse (extra nursing notes, on-call reviews), as they do on a ward.

Reproducible: each patient's notes come from its own generator, keyed by (seed, patient
index), so they do not depend on the other patients and the vitals are left unchanged.
"""

from __future__ import annotations

import hashlib
import heapq
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from features.news2 import News2Inputs, news2
from models.cohort import CohortSpec, HiddenState, PatientCourse, courses
from models.eventlog import isoformat

NOTES_FILE = "notes.jsonl"
GENERATOR = "vigil-notes-1"
_NOTES_STREAM = 0x6E6F7465
"""Spawn key of the notes generator, far from the cohort's own streams (0 and 1)."""

_SHIFT_H = (8.0, 12.0)
_SHIFT_SKIPPED = 0.15
_TERSE = 0.15
_SECTION_WRITTEN = 0.75
_COPY_FORWARD = 0.4
_ALLIED_PER_DAY = 0.5
_ALLIED = ("dietitian", "physiotherapy", "social_work", "discharge_planning")

_REASONS_MEDICAL = (
    "a fall at home",
    "cellulitis of the left leg",
    "a urinary tract infection",
    "community-acquired pneumonia",
    "an exacerbation of COPD",
    "decompensated heart failure",
    "acute kidney injury",
    "chest pain, troponin negative",
    "poorly controlled diabetes",
    "reduced mobility and confusion",
    "an upper GI bleed, now settled",
)
_REASONS_SURGICAL = (
    "an elective right hip replacement",
    "an elective left knee replacement",
    "a laparoscopic cholecystectomy",
    "a fractured neck of femur, repaired",
    "a small bowel obstruction, managed conservatively",
    "an anterior resection",
)
_HISTORY = (
    "hypertension",
    "type 2 diabetes",
    "chronic kidney disease stage 3",
    "osteoarthritis",
    "hypothyroidism",
    "previous stroke with mild left-sided weakness",
    "ischaemic heart disease",
    "depression",
    "gout",
    "osteoporosis",
    "benign prostatic hyperplasia",
    "glaucoma",
)
_MEDICATIONS = (
    "amlodipine 5 mg oral once daily for hypertension",
    "ramipril 2.5 mg oral once daily for hypertension and renal protection",
    "metformin 1 g oral twice daily for type 2 diabetes",
    "gliclazide 80 mg oral twice daily for type 2 diabetes",
    "atorvastatin 40 mg oral at night for secondary prevention",
    "aspirin 75 mg oral once daily for ischaemic heart disease",
    "levothyroxine 100 micrograms oral once daily for hypothyroidism",
    "omeprazole 20 mg oral once daily for gastric protection",
    "paracetamol 1 g oral four times daily for osteoarthritis pain",
    "sertraline 50 mg oral once daily for depression",
    "allopurinol 100 mg oral once daily for gout",
    "alendronic acid 70 mg oral once weekly for osteoporosis",
    "calcium and vitamin D one tablet twice daily",
    "tamsulosin 400 micrograms oral once daily for prostatic symptoms",
    "latanoprost one drop to both eyes at night for glaucoma",
    "senna 15 mg oral at night for constipation",
    "lactulose 10 ml oral twice daily for constipation",
    "folic acid 5 mg oral once daily",
    "furosemide 40 mg oral once daily for ankle swelling",
    "insulin glargine 18 units subcutaneous at night",
    "codeine 30 mg oral as required for pain",
    "gabapentin 300 mg oral three times daily for neuropathic pain",
    "mirtazapine 15 mg oral at night for low mood and sleep",
    "clopidogrel 75 mg oral once daily after previous stroke",
)
_NAMES = ("Patel", "Okafor", "Smith", "Nguyen", "Brennan", "Kowalski", "Haddad", "Jones")


@dataclass
class _Patient:
    """Who the patient is in the notes: chronic problems, medications, why admitted."""

    course: PatientCourse
    reason: str
    history: list[str]
    medications: list[str]
    dementia: bool
    chronic_oedema: bool
    af: bool
    sentences: dict[str, list[str]] = field(default_factory=dict)
    """The previous note of each type, sentence by sentence: what copy-forward copies."""


@dataclass(frozen=True)
class _Moment:
    """One note's view of the patient: the hidden truth and what the writer measured."""

    patient: _Patient
    rng: np.random.Generator
    at: datetime
    state: HiddenState
    temp: float
    hr: int
    rr: int
    spo2: int
    sbp: int
    dbp: int
    oxygen_lpm: float
    news2: int

    def one(self, options: Sequence[str]) -> str:
        return options[int(self.rng.integers(len(options)))]

    def chance(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    @property
    def course(self) -> PatientCourse:
        return self.patient.course

    @property
    def new_oxygen(self) -> bool:
        return self.oxygen_lpm > self.course.baseline.home_o2_lpm + 0.5

    @property
    def on_what(self) -> str:
        if self.oxygen_lpm <= 0:
            return "room air"
        if self.oxygen_lpm >= 10:
            return "15L via non-rebreather mask"
        return f"{self.oxygen_lpm:.0f}L"


def _rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index, _NOTES_STREAM)))


def _moment(patient: _Patient, rng: np.random.Generator, at: datetime) -> _Moment:
    c = patient.course
    hours = (at - c.origin).total_seconds() / 3600
    p = {k: float(v[0]) for k, v in c.physiology(np.array([hours])).items()}
    temp = round(p["temp"] + rng.normal(0, 0.15), 1)
    hr = round(p["hr"] + rng.normal(0, 4))
    rr = round(p["rr"] + rng.normal(0, 1.5))
    spo2 = min(100, round(p["spo2"] + rng.normal(0, 1)))
    sbp = round(p["sbp"] + rng.normal(0, 6))
    dbp = min(sbp - 10, round(p["dbp"] + rng.normal(0, 4)))
    state = c.state_at(at)
    score = news2(
        News2Inputs(
            respiratory_rate=rr,
            spo2=spo2,
            spo2_scale=c.baseline.spo2_scale,
            supplemental_o2=p["oxygen_lpm"] > 0,
            systolic_bp=sbp,
            heart_rate=hr,
            consciousness="C" if state.confusion > c.baseline.confusion_from else "A",
            temperature=temp,
        )
    ).total
    return _Moment(patient, rng, at, state, temp, hr, rr, spo2, sbp, dbp, p["oxygen_lpm"], score)


def _temperature(m: _Moment) -> list[str]:
    if m.state.episode == "post_op_fever" and m.temp >= 37.5:
        return [
            m.one(
                (
                    f"Low grade temp {m.temp} post-op, wound clean and dry, encouraged deep "
                    "breathing.",
                    f"Temp {m.temp}, likely post-operative, surgical team aware, no concerns.",
                    f"Temp {m.temp} this evening, ?atelectasis, chest physio requested.",
                )
            )
        ]
    if m.temp >= 38.0:
        if m.state.fever > 0.6 and m.chance(0.6):
            return [
                m.one(
                    (
                        f"Spiked a temp of {m.temp} with rigors, blood cultures taken.",
                        f"Febrile {m.temp}, rigors ++, doctor informed.",
                        f"Shivering and feels hot, temp {m.temp}.",
                    )
                )
            ]
        return [
            m.one(
                (
                    f"Febrile {m.temp}, paracetamol given.",
                    f"Temp {m.temp}, ?source, sample sent.",
                    f"Feels hot and clammy, temp {m.temp}.",
                )
            )
        ]
    if m.temp >= 37.6 and m.state.fever > 0.15 and m.chance(0.7):
        return [m.one((f"Temp {m.temp}, low grade, ?spiking.", f"Temp {m.temp}, feels warm."))]
    if m.temp <= 35.8 and m.state.hypothermia > 0.2:
        return [
            m.one(
                (
                    f"Temp low at {m.temp}, warming blanket applied.",
                    f"Cold peripheries, temp {m.temp}.",
                )
            )
        ]
    if m.chance(0.5):
        return [
            m.one(
                (
                    "Apyrexial.",
                    "No fever.",
                    f"Afebrile, temp {m.temp}.",
                    "No rigors.",
                    f"Temp {m.temp}, not febrile.",
                    "No temperature spikes this shift.",
                )
            )
        ]
    return []


def _breathing(m: _Moment) -> list[str]:
    out = []
    b = m.course.baseline
    if m.state.episode == "sleep_desaturation" or (b.kind == "copd" and m.chance(0.1)):
        out.append(
            f"Brief desaturation to {min(m.spo2, 88)}% while asleep, resolved on waking, no "
            "oxygen needed."
        )
    elif m.new_oxygen and m.chance(0.85):
        if m.oxygen_lpm >= 6:
            out.append(
                m.one(
                    (
                        f"Now requiring {m.on_what} via face mask, sats {m.spo2}%.",
                        f"Oxygen increased to {m.on_what}, sats only {m.spo2}%.",
                    )
                )
            )
        else:
            out.append(
                m.one(
                    (
                        f"New oxygen requirement, now on {m.on_what} nasal specs, sats {m.spo2}%.",
                        f"Sats dropped to {m.spo2 - 3}% on air, oxygen started at {m.on_what}.",
                        f"Sats {m.spo2}% on {m.on_what}, was on room air yesterday.",
                    )
                )
            )
    elif b.kind == "copd":
        out.append(
            f"On usual home oxygen {b.home_o2_lpm:.0f}L, sats {m.spo2}% within target 88-92%."
            if b.home_o2_lpm > 0
            else f"Sats {m.spo2}% on air, target 88-92% as known COPD."
        )
    elif m.chance(0.6):
        out.append(
            m.one(
                (
                    f"Sats {m.spo2}% on room air.",
                    "No oxygen requirement.",
                    f"Saturating {m.spo2}% on air.",
                )
            )
        )
    if m.state.tachypnoea > 0.35 and m.chance(0.8):
        out.append(
            m.one(
                (
                    f"RR {m.rr}, increasingly short of breath.",
                    "Breathless at rest, using accessory muscles.",
                    "Looks more breathless than yesterday.",
                    f"Slightly breathless, RR {m.rr}, possibly anxious.",
                )
            )
        )
    elif m.state.tachypnoea > 0.2 and m.chance(0.6):
        out.append(f"RR {m.rr}, a little more breathless on exertion.")
    elif b.kind == "copd" and m.chance(0.6):
        out.append("Breathless on exertion, at her baseline per family.")
    elif m.state.episode == "pain" and m.chance(0.5):
        out.append(f"Slightly breathless with pain, RR {m.rr}, possibly anxious.")
    elif m.chance(0.5):
        out.append(
            m.one(
                (
                    "Not short of breath.",
                    "Denies shortness of breath.",
                    "Breathing comfortably.",
                    f"RR {m.rr}, no increased work of breathing.",
                )
            )
        )
    if m.state.consolidation > 0.35 and m.chance(0.7):
        out.append(
            m.one(
                (
                    "Productive cough, green sputum.",
                    "Coughing ++, sputum sample sent.",
                    "Crackles right base on listening, ?chest infection.",
                )
            )
        )
    elif m.chance(0.25):
        out.append(m.one(("No cough.", "Occasional dry cough, chronic per patient.")))
    if m.state.episode == "nebuliser":
        out.append(f"Salbutamol nebs given, HR {m.hr} afterwards, settled.")
    return out


def _circulation(m: _Moment) -> list[str]:
    out = []
    b = m.course.baseline
    if m.sbp <= 100 and m.state.hypotension > 0.2:
        out.append(
            m.one(
                (
                    f"BP {m.sbp}/{m.dbp}, hypotensive, doctor informed, fluid bolus given.",
                    f"BP soft at {m.sbp}/{m.dbp}.",
                    f"Hypotensive {m.sbp}/{m.dbp}, 500ml bolus given with little response.",
                )
            )
        )
    elif m.sbp <= 110 and m.state.hypotension > 0.1 and m.chance(0.6):
        out.append(f"BP {m.sbp}/{m.dbp}, lower than usual for her.")
    elif b.kind == "chronic_hypotension" and m.chance(0.7):
        out.append(f"BP {m.sbp}/{m.dbp}, runs low at baseline, asymptomatic.")
    elif m.sbp >= 170:
        out.append(f"BP elevated {m.sbp}/{m.dbp}.")
    elif m.chance(0.5):
        out.append(
            m.one(
                (
                    f"BP {m.sbp}/{m.dbp}, stable.",
                    "Obs within normal limits.",
                    f"BP {m.sbp}/{m.dbp}.",
                )
            )
        )
    if m.patient.af and m.chance(0.6):
        out.append(f"Known AF, HR {m.hr} irregular, rate control as per team.")
    elif m.state.episode == "pain" and m.hr > 95:
        out.append(f"HR {m.hr} with pain, settled after analgesia.")
    elif m.hr > 100 and m.chance(0.7):
        out.append(m.one((f"HR {m.hr}, tachycardic.", f"HR {m.hr}, ?pain related.")))
    if m.state.arrhythmia > 0.3 and m.chance(0.6):
        out.append(
            m.one(
                (
                    f"Complaining of palpitations, HR {m.hr} irregular, ECG done.",
                    "Central chest pain, ECG done, doctor informed.",
                )
            )
        )
    elif m.chance(0.3):
        out.append(m.one(("Denies chest pain.", "No palpitations.", "No chest pain.")))
    return out


def _neuro(m: _Moment) -> list[str]:
    confusion = m.state.confusion
    if confusion > 0.8 and m.chance(0.8):
        return [m.one(("Drowsy, rousable to voice only.", "Very drowsy this afternoon."))]
    if confusion > m.course.baseline.confusion_from and m.chance(0.7):
        return [
            m.one(
                (
                    "New confusion, disorientated to time and place.",
                    "Agitated and pulling at cannula, not her usual self per daughter.",
                    "?More drowsy today, possibly tired after a poor night.",
                )
            )
        ]
    if confusion > m.course.baseline.confusion_from / 2 and m.chance(0.4):
        return [m.one(("Seems a bit muddled this evening, ?new.", "Slightly vague at times."))]
    if m.patient.dementia and m.chance(0.6):
        return ["Known dementia, pleasantly confused, at her baseline."]
    if m.chance(0.5):
        return [m.one(("Alert and orientated.", "Not confused.", "GCS 15, chatting to staff."))]
    return []


def _fluids(m: _Moment) -> list[str]:
    out = []
    s = m.state
    if s.hypotension + s.hypovolaemia > 0.3 and m.chance(0.7):
        out.append(
            m.one(
                (
                    f"Urine output poor, {int(m.rng.integers(20, 90))}ml over last 4 hours.",
                    f"Only {int(m.rng.integers(40, 150))}ml urine this shift, catheter flushed.",
                    "Oliguric, fluid balance chart started.",
                )
            )
        )
    elif m.chance(0.35):
        out.append(m.one(("Passing urine well.", "Good urine output.", "PU independently.")))
    if s.fluid_overload > 0.3 and m.chance(0.75):
        out.append(
            m.one(
                (
                    "Bilateral ankle oedema, worse today.",
                    f"Crackles at both bases, weight up {m.rng.uniform(1, 3):.1f}kg.",
                    "Legs more swollen, sleeping propped up on four pillows.",
                )
            )
        )
    elif m.patient.chronic_oedema and m.chance(0.5):
        out.append("Mild ankle oedema, unchanged from admission.")
    elif m.chance(0.2):
        out.append("No peripheral oedema.")
    if s.hypovolaemia > 0.3 and m.chance(0.8):
        out.append(
            m.one(
                (
                    f"Melaena x{int(m.rng.integers(1, 4))} this shift.",
                    "Fresh PR bleed noted.",
                    f"Haematemesis approx {int(m.rng.integers(1, 5)) * 100}ml.",
                    "Pale and clammy.",
                )
            )
        )
    elif m.chance(0.05):
        out.append(m.one(("Small nosebleed, settled with pressure.", "Old blood on pad.")))
    elif m.chance(0.2):
        out.append(m.one(("No signs of bleeding.", "No melaena.", "Bowels open, normal.")))
    return out


def _comfort(m: _Moment) -> list[str]:
    eating = (
        "Poor oral intake, encouraged."
        if m.state.severity > 0.4 and m.chance(0.6)
        else m.one(("Eating and drinking well.", "Diet and fluids taken.", "Poor appetite."))
    )
    return [
        s
        for s in (
            eating,
            m.one(
                (
                    "Mobilising with frame.",
                    "Walked to toilet with assistance of one.",
                    "Remained in bed.",
                    "Sat out in chair for lunch.",
                )
            ),
            m.one(("Pressure areas intact.", "Family visited.", "Slept well.", "Pain controlled.")),
        )
        if m.chance(0.5)
    ] + _worry(m)


def _worry(m: _Moment) -> list[str]:
    """A nurse's sense that something is wrong: early, vague, and now and then wrong."""
    if (m.state.severity > 0.3 and m.chance(0.5)) or m.chance(0.03):
        return [m.one(("Looks unwell.", "Not herself today per family.", "Looks grey, concerned."))]
    return []


def _escalation(m: _Moment) -> list[str]:
    if m.state.severity > 0.45 and m.news2 >= 5 and m.chance(0.6):
        return [
            m.one(
                (
                    f"NEWS2 {m.news2}, escalated to nurse in charge and doctor.",
                    "Reviewed by outreach team, plan for hourly obs.",
                    f"NEWS2 {m.news2}, doctor aware and reviewing.",
                )
            )
        ]
    if m.state.episode is not None and m.news2 >= 3 and m.chance(0.4):
        return [f"NEWS2 {m.news2} during episode, reviewed by F1, no concerns, continue obs."]
    return []


_SECTIONS = (_temperature, _breathing, _circulation, _neuro, _fluids, _comfort)


def _copy_forward(m: _Moment, kind: str, sentences: list[str]) -> list[str]:
    """Stale sentences of the previous note of the same type, as a copy-and-edit leaves
    them: true then, perhaps false now."""
    previous = m.patient.sentences.get(kind, [])
    if previous and m.chance(_COPY_FORWARD):
        picks = m.rng.choice(len(previous), size=min(len(previous), int(m.rng.integers(1, 4))))
        for i in sorted(set(picks.tolist())):
            sentences.insert(int(m.rng.integers(len(sentences) + 1)), previous[i])
    return sentences


def _nursing(m: _Moment) -> list[str]:
    if m.chance(_TERSE):
        return [
            m.one(
                (
                    "Settled shift, nil concerns.",
                    "Obs as charted.",
                    "Care given as per plan.",
                    "No change.",
                )
            )
        ]
    out = [m.one(("Patient settled.", "Received in bed.", "Care as per plan.", "Self-caring."))]
    for section in _SECTIONS:
        if m.chance(_SECTION_WRITTEN):
            out.extend(section(m))
    out.extend(_escalation(m))
    return _copy_forward(m, "nursing", out)


_BENIGN = {
    "post_op_fever": (
        "?early sepsis, likely post-operative or atelectasis.",
        "Observe, repeat bloods.",
    ),
    "pain": ("Tachycardia secondary to pain, no signs of sepsis.", "Regular analgesia."),
    "nebuliser": ("Tachycardia after salbutamol nebuliser.", "No action, repeat obs in 1 hour."),
    "sleep_desaturation": (
        "Nocturnal desaturation, ?obstructive sleep apnoea.",
        "Outpatient sleep study, no oxygen needed.",
    ),
}
"""What a doctor makes of a benign episode: alarming words, nothing wrong."""
_REVIEWED = {"post_op_fever": 0.5, "pain": 0.3, "nebuliser": 0.05, "sleep_desaturation": 0.1}
"""Chance that a benign episode brings the on-call doctor (a COPD patient has nebulisers
four times a day, and nobody is called to each)."""


def _impression(m: _Moment) -> tuple[str, str]:
    s, syndrome = m.state.severity, m.state.syndrome
    hedged = {
        "sepsis": ("?early sepsis, source unclear.", "Blood cultures, lactate, review later."),
        "respiratory_failure": (
            "?worsening chest, possible aspiration.",
            "Chest X-ray and ABG, oxygen to target.",
        ),
        "haemorrhage": (
            "Possible GI bleed, ?upper source.",
            "Group and save, hold anticoagulants.",
        ),
        "heart_failure": ("?fluid overload.", "Daily weights, strict fluid balance."),
        "arrhythmia": ("Palpitations, ?paroxysmal AF.", "Telemetry, check electrolytes."),
    }
    firm = {
        "sepsis": (
            "Sepsis, likely chest source, deteriorating.",
            "IV antibiotics, fluids, discuss with critical care.",
        ),
        "respiratory_failure": (
            "Type 1 respiratory failure, worsening.",
            "Escalate oxygen, discuss with critical care if no improvement.",
        ),
        "haemorrhage": (
            "Upper GI bleed, haemodynamically unstable.",
            "Transfuse 2 units, urgent endoscopy, critical care aware.",
        ),
        "heart_failure": (
            "Acute decompensated heart failure.",
            "IV furosemide 80mg, fluid restrict, consider CPAP.",
        ),
        "arrhythmia": ("Runs of VT on monitor.", "Cardiology review, correct potassium."),
    }
    if syndrome and s > 0.45 and m.chance(0.8):
        return firm[syndrome]
    if syndrome and s > 0.15 and m.chance(0.6):
        return hedged[syndrome]
    if m.state.episode in _BENIGN:
        return _BENIGN[m.state.episode]
    if m.chance(0.15) and not syndrome:
        return ("?early sepsis, likely post-operative or atelectasis.", "Observe, repeat bloods.")
    return m.one(
        (
            ("Improving, medically stable.", "Aim discharge tomorrow if remains well."),
            ("Stable.", "Continue current management."),
            ("Medically optimised.", "Awaiting social care package."),
            ("Slow progress.", "Physio and OT review, bloods tomorrow."),
        )
    )


def _examination(m: _Moment) -> list[str]:
    s = m.state
    chest = (
        "Chest: coarse crackles right base."
        if s.consolidation > 0.3
        else "Chest: bibasal crackles."
        if s.fluid_overload > 0.3
        else "Chest: clear."
    )
    return [
        f"O/E: T {m.temp}, HR {m.hr}, BP {m.sbp}/{m.dbp}, RR {m.rr}, sats {m.spo2}% on "
        f"{m.on_what}.",
        chest,
        "JVP raised, pitting oedema to knees." if s.fluid_overload > 0.4 else "Calves soft.",
        "Abdomen soft, non-tender." if s.hypovolaemia < 0.3 else "Abdomen soft, PR melaena.",
    ]


def _progress(m: _Moment) -> list[str]:
    p = m.patient
    day = (m.at - m.course.admitted_at).days + 1
    impression, plan = _impression(m)
    previous = p.sentences.get("progress", [])
    stale_plan = [s for s in previous if s.startswith("Plan:")]
    out = [
        f"Ward round, Dr {m.one(_NAMES)}.",
        f"Day {day} of admission with {p.reason}.",
        f"PMH: {', '.join(p.history)}.",
    ]
    out.extend(_examination(m) if m.chance(0.8) else ["Seen and examined, obs reviewed."])
    out.append(f"Impression: {impression}")
    if stale_plan and m.chance(_COPY_FORWARD):
        out.append(stale_plan[0])
    out.append(f"Plan: {plan}")
    return out


def _review(m: _Moment) -> list[str]:
    """The on-call doctor called to a worrying score: often the first medical note of a
    deterioration, just as often about a benign episode."""
    impression, plan = _impression(m)
    return [
        f"On-call medical review, Dr {m.one(_NAMES)}.",
        m.one(
            (
                f"Asked to see: NEWS2 {m.news2}.",
                "Asked to review by nursing staff, concerned about the patient.",
                f"Called re NEWS2 {m.news2}, patient says she feels fine.",
            )
        ),
        *(_examination(m) if m.chance(0.8) else []),
        f"Impression: {impression}",
        f"Plan: {plan}",
        "Escalate to registrar if NEWS2 rises further.",
    ]


def _admission(m: _Moment) -> list[str]:
    """The clerking note: the history and every regular medicine, often past one encoder
    window (the medication list is one long sentence)."""
    p = m.patient
    out = [
        f"Admission clerking, Dr {m.one(_NAMES)}.",
        f"Presenting complaint: admitted with {p.reason}.",
        "History from patient and daughter, who is present.",
        "Lives at home with a package of care twice daily, mobilises with a frame.",
        f"Past medical history: {', '.join(p.history)}.",
        f"Regular medications: {'; '.join(p.medications)}.",
        "Allergies: penicillin (rash)." if m.chance(0.2) else "No known drug allergies.",
        "Ex-smoker, 20 pack years, minimal alcohol.",
    ]
    out.extend(_examination(m))
    out.extend(
        [
            f"Impression: {p.reason}.",
            "Plan: bloods, chest X-ray, VTE assessment, observations 4 hourly.",
        ]
    )
    return out


def _allied(m: _Moment, kind: str) -> list[str]:
    if kind == "dietitian":
        return [
            f"Dietitian review: MUST score {int(m.rng.integers(0, 3))}.",
            "Commenced oral nutritional supplements twice daily.",
            "Food charts to continue, will review next week.",
        ]
    if kind == "physiotherapy":
        return [
            f"Physio: mobilised {int(m.rng.integers(1, 6)) * 10}m with frame and one assist.",
            "Chest clear, no physio needs for chest."
            if m.state.consolidation < 0.3
            else "Chest physio given, productive of thick sputum.",
        ]
    if kind == "social_work":
        return [
            "Social work: lives alone, daughter visits daily.",
            "Discussed care package on discharge, referral made.",
        ]
    return [
        f"Discharge planning: estimated date of discharge in {int(m.rng.integers(1, 5))} days.",
        "Awaiting package of care, transport to be booked.",
    ]


def _patient(c: PatientCourse, rng: np.random.Generator) -> _Patient:
    surgical = any(e.kind == "post_op_fever" for e in c.episodes) or rng.random() < 0.15
    history = [str(h) for h in rng.choice(_HISTORY, size=int(rng.integers(1, 5)), replace=False)]
    af = c.baseline.kind == "chronic_tachycardia" and c.baseline.hr_sd > 5
    if c.baseline.kind == "copd":
        history.insert(0, "COPD" + (" on home oxygen" if c.baseline.home_o2_lpm > 0 else ""))
    if af:
        history.insert(0, "atrial fibrillation")
    dementia = bool(rng.random() < 0.1)
    if dementia:
        history.append("dementia")
    polypharmacy = rng.random() < 0.35
    count = int(rng.integers(14, 23)) if polypharmacy else int(rng.integers(2, 8))
    medications = [str(x) for x in rng.choice(_MEDICATIONS, size=count, replace=False)]
    if c.baseline.hr_gain < 1:
        medications.insert(0, "bisoprolol 2.5 mg oral once daily for rate control")
    if af:
        medications.insert(0, "apixaban 5 mg oral twice daily for stroke prevention in AF")
    reasons = _REASONS_SURGICAL if surgical else _REASONS_MEDICAL
    return _Patient(
        course=c,
        reason=reasons[int(rng.integers(len(reasons)))],
        history=history,
        medications=medications,
        dementia=dementia,
        chronic_oedema=bool(rng.random() < 0.12),
        af=af,
    )


def _schedule(c: PatientCourse, rng: np.random.Generator) -> list[tuple[datetime, str]]:
    """When each note is written: nursing notes at the end of shifts (some skipped), more
    when the patient is worrying, an on-call review when a score calls one (for a
    deterioration or a benign episode), a daily ward round, now and then an allied-health note;
    all inside the stay, and strictly before an event."""
    start, end = c.admitted_at, c.discharged_at
    hours = (end - start).total_seconds() / 3600
    found: list[tuple[datetime, str]] = []
    if start > c.origin:
        found.append((start + timedelta(hours=rng.uniform(0.5, 3)), "admission"))
    t = rng.uniform(1, 6)
    while t < hours:
        if rng.random() >= _SHIFT_SKIPPED:
            found.append((start + timedelta(hours=t), "nursing"))
        t += rng.uniform(*_SHIFT_H)
    grid = np.arange(rng.uniform(0, 1), hours, 1.0)
    origin_h = (start - c.origin).total_seconds() / 3600
    severity = c.physiology(origin_h + grid)["severity"]
    worried = (severity > 0.25) & (rng.random(len(grid)) < 0.4 * severity)
    found.extend((start + timedelta(hours=float(h)), "nursing") for h in grid[worried])
    called = (severity > 0.35) & (rng.random(len(grid)) < 0.2 * severity)
    found.extend((start + timedelta(hours=float(h) + 0.5), "review") for h in grid[called])
    for episode in c.episodes:
        if rng.random() < _REVIEWED.get(episode.kind, 0.0):
            at = episode.start_h + episode.duration_h * rng.uniform(0.3, 0.7)
            found.append((c.origin + timedelta(hours=at), "review"))
    day = start.replace(hour=0, minute=0, second=0)
    while day < end:
        at = day + timedelta(hours=rng.uniform(9, 12.5))
        if start + timedelta(hours=4) < at and rng.random() < 0.9:
            found.append((at, "progress"))
        for _ in range(rng.poisson(_ALLIED_PER_DAY)):
            found.append((day + timedelta(hours=rng.uniform(9, 17)), str(rng.choice(_ALLIED))))
        day += timedelta(days=1)
    inside = [(at.replace(microsecond=0), kind) for at, kind in found if start < at < end]
    return sorted(inside)


def patient_notes(spec: CohortSpec, c: PatientCourse) -> list[dict[str, Any]]:
    """One patient's notes in time order, as `ClinicalNote` JSON objects."""
    rng = _rng(spec.seed, c.index)
    patient = _patient(c, rng)
    notes = []
    for n, (at, kind) in enumerate(_schedule(c, rng)):
        m = _moment(patient, rng, at)
        if kind == "nursing":
            sentences = _nursing(m)
        elif kind == "progress":
            sentences = _progress(m)
        elif kind == "admission":
            sentences = _admission(m)
        elif kind == "review":
            sentences = _review(m)
        else:
            sentences = _allied(m, kind)
        patient.sentences[kind] = sentences
        joiner = " " if kind == "nursing" or m.chance(0.5) else "\n"
        notes.append(
            {
                "event_id": f"{c.patient_id}-note-{n}",
                "patient_id": c.patient_id,
                "written_at": isoformat(at),
                "note_id": f"{c.patient_id}-{kind}-{n}",
                "note_type": kind,
                "text": joiner.join(sentences),
            }
        )
    return notes


def notes(spec: CohortSpec, cohort: list[PatientCourse]) -> Iterator[dict[str, Any]]:
    """Every patient's notes merged in `written_at` order (ties by patient)."""
    streams = (
        ((note["written_at"], c.index, note) for note in patient_notes(spec, c)) for c in cohort
    )
    for _, _, note in heapq.merge(*streams, key=itemgetter(0, 1)):
        yield note


def write_notes(spec: CohortSpec, directory: Path) -> dict[str, Any]:
    """Write `notes.jsonl` beside a cohort written by `models.cohort.write(spec, …)`;
    returns the counts and the file's SHA-256 (training records both)."""
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: write the cohort first")
    by_type: Counter[str] = Counter()
    patients: set[str] = set()
    digest = hashlib.sha256()
    with (directory / NOTES_FILE).open("wb") as f:
        for note in notes(spec, courses(spec)):
            line = orjson.dumps(note) + b"\n"
            f.write(line)
            digest.update(line)
            by_type[note["note_type"]] += 1
            patients.add(note["patient_id"])
    return {
        "generator": GENERATOR,
        "notes": sum(by_type.values()),
        "patients": len(patients),
        "by_type": dict(sorted(by_type.items())),
        "sha256": digest.hexdigest(),
    }
