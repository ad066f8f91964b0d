"""The landing layout of shared/contract/README.md, sections 1 and 2: tables and their columns."""

from __future__ import annotations

VULNERABILITIES = (
    "mental_health",
    "substance_misuse",
    "suicide_self_harm",
    "learning_disability",
    "physical_health",
    "accommodation",
    "abuse_victim",
    "financial",
    "communication",
)

# Landing path under the raw root -> column names (case-sensitive, order not guaranteed on input).
TABLES: dict[str, list[str]] = {
    "ld_referrals": [
        "referral_id",
        "site_code",
        "referral_date",
        "index_offence_date",
        "point_of_contact",
        "pathway",
        "forename",
        "surname",
        "date_of_birth",
        "sex",
        "nhs_number",
        "pnc_id",
        "postcode",
        "consent",
        "declined",
        *[f"vuln_{v}" for v in VULNERABILITIES],
        "mh_needs",
        "onward_referrals",
    ],
    "hes_ae": [
        "AEKEY",
        "NEWNHSNO",
        "DOB",
        "SEX",
        "HOMEADD",
        "ARRIVALDATE",
        "ARRIVALTIME",
        "PROCODE3",
        "AEATTENDCAT",
        "AEATTENDDISP",
        "AEPATGROUP",
        "DIAG_01",
    ],
    "mhsds/mhs001_mpi": [
        "LocalPatientId",
        "OrgIDProv",
        "NHSNumber",
        "PersonBirthDate",
        "Gender",
        "Postcode",
        "UniqMonthID",
    ],
    "mhsds/mhs101_referral": [
        "ServiceRequestId",
        "LocalPatientId",
        "OrgIDProv",
        "ReferralRequestReceivedDate",
        "SourceOfReferralMH",
        "ServTeamTypeRefToMH",
        "ServDischDate",
        "UniqMonthID",
    ],
    "mhsds/mhs201_care_contact": [
        "CareContactId",
        "ServiceRequestId",
        "OrgIDProv",
        "CareContDate",
        "AttendOrDNACode",
        "ConsMechanismMH",
        "UniqMonthID",
    ],
    "mhsds/mhs401_mha_period": [
        "MHActLegalStatusClassPeriodId",
        "LocalPatientId",
        "OrgIDProv",
        "LegalStatusCode",
        "StartDateMHActLegalStatusClass",
        "EndDateMHActLegalStatusClass",
        "UniqMonthID",
    ],
    "iapt/ids001_mpi": [
        "LocalPatientId",
        "OrgIDProv",
        "NHSNumber",
        "PersonBirthDate",
        "Gender",
        "Postcode",
        "UniqMonthID",
    ],
    "iapt/ids101_referral": [
        "ServiceRequestId",
        "LocalPatientId",
        "OrgIDProv",
        "ReferralRequestReceivedDate",
        "SourceOfReferralMH",
        "ServDischDate",
        "EndCode",
        "UniqMonthID",
    ],
    "iapt/ids201_care_contact": [
        "CareContactId",
        "ServiceRequestId",
        "OrgIDProv",
        "CareContDate",
        "AttendOrDNACode",
        "UniqMonthID",
    ],
    "ndtms/episodes": [
        "EPISODID",
        "CLIENTID",
        "AGNCY",
        "FINITIAL",
        "SINITIAL",
        "DOB",
        "SEX",
        "PC",
        "REFLD",
        "TRIAGED",
        "RFLS",
        "DRUG1",
        "DISD",
        "DISRSN",
    ],
    "ndtms/modalities": ["MODID", "EPISODID", "AGNCY", "MODAL", "REFMODDT", "MODST", "MODEND"],
    "ndtms/top": ["TOPID", "EPISODID", "AGNCY", "TOPDATE", "PSYHSTAT", "PHSTAT", "QUALLIFE"],
    "pnc/offences": [
        "offence_id",
        "pnc_id",
        "cro_number",
        "forename",
        "surname",
        "date_of_birth",
        "sex",
        "postcode",
        "offence_date",
        "arrest_date",
        "charge_date",
        "ho_offence_code",
        "offence_category",
        "disposal_date",
        "disposal_code",
        "custodial_days",
    ],
    "hmcts/cases": [
        "case_id",
        "source_system",
        "court_code",
        "defendant_forename",
        "defendant_surname",
        "defendant_dob",
        "defendant_sex",
        "defendant_postcode",
        "pnc_id",
        "offence_date",
        "charge_date",
        "first_hearing_date",
        "completion_date",
        "case_outcome",
        "sentence_date",
    ],
    "hmcts/hearings": ["hearing_id", "case_id", "hearing_date", "hearing_type", "adjourned"],
}

# Truth files (synthetic extracts only; never read by the analysis).
RECORD_PERSON_COLUMNS = ["source_table", "record_key", "person_id"]

# Estimand names of the results table (contract section 4), in order.
ESTIMANDS = [
    "n_evaluation",
    "n_historic",
    "pct_any_vulnerability",
    "pct_mental_health",
    "pct_substance_misuse",
    "pct_multiple_mh_needs",
    "pct_no_prior_contact",
    "ae_attendance_rr",
    "mh_referral_rr",
    "mh_contact_rr",
    "mha_detention_rr",
    "iapt_referral_rr",
    "iapt_attendance_rr",
    "drug_referral_rr",
    "drug_attendance_rr",
    "offending_rr",
    "custody_or",
    "sentence_length_ratio",
    "court_duration_days_diff",
    "hearings_per_case_rr",
    "adjournments_rr",
    "arrest_to_sentence_days_diff",
    "savings_per_referral_avg_gbp",
    "savings_per_referral_avg_prod_gbp",
    "savings_per_referral_median_prod_gbp",
    "cost_per_referral_gbp",
    "savings_total_low_gbp",
    "savings_total_high_gbp",
    # Section 4c: further findings of the brief, in the contract's order.
    "ae_prior_cjs_rr",
    "cjs_predicts_health_rr",
    "drug_referral_new_pct",
    "iapt_conversion_diff",
    "drug_conversion_diff",
    "self_reported_health_slope",
    "site_heterogeneity_iapt_p",
    "site_heterogeneity_mh_p",
    "declined_substance_or",
    "court_duration_at_referral_days_diff",
    "police_contact_rr",
]
# The effect estimands by family (section 4b, the sensitivity forest plot): a family shares a scale.
EFFECT_FAMILIES = {
    "health": [
        "ae_attendance_rr",
        "mh_referral_rr",
        "mh_contact_rr",
        "mha_detention_rr",
        "iapt_referral_rr",
        "iapt_attendance_rr",
        "drug_referral_rr",
        "drug_attendance_rr",
    ],
    "justice": [
        "offending_rr",
        "police_contact_rr",
        "custody_or",
        "sentence_length_ratio",
        "hearings_per_case_rr",
        "adjournments_rr",
    ],
    "timeliness": ["court_duration_days_diff", "arrest_to_sentence_days_diff"],
    "economics": [
        "savings_per_referral_avg_gbp",
        "savings_per_referral_avg_prod_gbp",
        "savings_per_referral_median_prod_gbp",
    ],
}
RESULT_COLUMNS = ["estimand", "estimate", "ci_low", "ci_high", "p_value", "n", "method"]
# The same columns as a Spark schema: the gold analysis/estimates table.
RESULT_SCHEMA = "estimand string, estimate double, ci_low double, ci_high double, p_value double, n long, method string"

# Columns that are not plain strings, by contract type (section 2); every other column is `str`.
DATE, INT, YN = "date", "int", "Y/N"
TYPES: dict[str, dict[str, str]] = {
    "ld_referrals": {
        "referral_date": DATE,
        "index_offence_date": DATE,
        "date_of_birth": DATE,
        "consent": YN,
        "declined": YN,
        **{f"vuln_{v}": YN for v in VULNERABILITIES},
        "mh_needs": INT,
    },
    "hes_ae": {"DOB": DATE, "ARRIVALDATE": DATE},
    "mhsds/mhs001_mpi": {"PersonBirthDate": DATE, "UniqMonthID": INT},
    "mhsds/mhs101_referral": {"ReferralRequestReceivedDate": DATE, "ServDischDate": DATE, "UniqMonthID": INT},
    "mhsds/mhs201_care_contact": {"CareContDate": DATE, "UniqMonthID": INT},
    "mhsds/mhs401_mha_period": {
        "StartDateMHActLegalStatusClass": DATE,
        "EndDateMHActLegalStatusClass": DATE,
        "UniqMonthID": INT,
    },
    "iapt/ids001_mpi": {"PersonBirthDate": DATE, "UniqMonthID": INT},
    "iapt/ids101_referral": {"ReferralRequestReceivedDate": DATE, "ServDischDate": DATE, "UniqMonthID": INT},
    "iapt/ids201_care_contact": {"CareContDate": DATE, "UniqMonthID": INT},
    "ndtms/episodes": {"DOB": DATE, "REFLD": DATE, "TRIAGED": DATE, "DISD": DATE},
    "ndtms/modalities": {"REFMODDT": DATE, "MODST": DATE, "MODEND": DATE},
    "ndtms/top": {"TOPDATE": DATE, "PSYHSTAT": INT, "PHSTAT": INT, "QUALLIFE": INT},
    "pnc/offences": {
        "date_of_birth": DATE,
        "offence_date": DATE,
        "arrest_date": DATE,
        "charge_date": DATE,
        "disposal_date": DATE,
        "custodial_days": INT,
    },
    "hmcts/cases": {
        "defendant_dob": DATE,
        "offence_date": DATE,
        "charge_date": DATE,
        "first_hearing_date": DATE,
        "completion_date": DATE,
        "sentence_date": DATE,
    },
    "hmcts/hearings": {"hearing_date": DATE, "adjourned": YN},
}

# Keys of each table ("unique within their table unless a duplicate row is an exact resubmission").
KEYS: dict[str, list[str]] = {
    "ld_referrals": ["referral_id"],
    "hes_ae": ["AEKEY"],
    "mhsds/mhs001_mpi": ["OrgIDProv", "LocalPatientId"],
    "mhsds/mhs101_referral": ["ServiceRequestId"],
    "mhsds/mhs201_care_contact": ["CareContactId"],
    "mhsds/mhs401_mha_period": ["MHActLegalStatusClassPeriodId"],
    "iapt/ids001_mpi": ["OrgIDProv", "LocalPatientId"],
    "iapt/ids101_referral": ["ServiceRequestId"],
    "iapt/ids201_care_contact": ["CareContactId"],
    "ndtms/episodes": ["EPISODID"],
    "ndtms/modalities": ["MODID"],
    "ndtms/top": ["TOPID"],
    "pnc/offences": ["offence_id"],
    "hmcts/cases": ["case_id"],
    "hmcts/hearings": ["hearing_id"],
}

# Columns, not keys, without which a row has no use: quarantined (rule missing_value) rather than
# loaded and then left out of every analysis table unseen. A court case is placed in its months,
# and found among its person's PNC offences, by its offence date alone (ld_spark.justice); an A&E
# attendance, a care contact or an MHA period is an event only in the month its date gives
# (ld_spark.events). Only records no other record hangs from: a referral or an NDTMS episode
# without its date still carries its contacts, modalities and reviews to their person.
REQUIRED: dict[str, list[str]] = {
    "hmcts/cases": ["offence_date"],
    "hes_ae": ["ARRIVALDATE"],
    "mhsds/mhs201_care_contact": ["CareContDate"],
    "mhsds/mhs401_mha_period": ["StartDateMHActLegalStatusClass"],
    "iapt/ids201_care_contact": ["CareContDate"],
}

# MHSDS and IAPT are monthly submissions: the same record recurs; the latest UniqMonthID wins.
MONTHLY_SUBMISSION_TABLES = {t for t in TABLES if t.startswith(("mhsds/", "iapt/"))}

# The services an L&D referral can be passed on to (ld_referrals.onward_referrals holds a
# ';'-separated list of them, so its values are checked item by item, not against CODES).
ONWARD_REFERRALS = (
    "advice",
    "brief_intervention",
    "gp",
    "iapt",
    "mh_specialist",
    "drug_alcohol",
    "housing",
    "mha_assessment",
    "learning_disability",
    "other",
)

# Code lists the contract gives in full; a value outside its list is quarantined.
_SITES = {f"LD{i:02d}" for i in range(1, 28)}
CODES: dict[str, dict[str, set[str]]] = {
    "ld_referrals": {
        "site_code": _SITES,
        "point_of_contact": {
            "police_custody",
            "voluntary_attendance",
            "magistrates_court",
            "crown_court",
            "youth_court",
            "probation",
            "community",
        },
        "pathway": {"adult", "youth"},
        "sex": {"M", "F", "U"},
    },
    "hes_ae": {
        "SEX": {"1", "2", "9"},
        "AEATTENDCAT": {"1", "2", "3", "9"},
        "AEATTENDDISP": {"01", "02", "03", "07", "12", "99"},
        "AEPATGROUP": {"10", "20", "30", "40", "50", "60", "70", "80"},
    },
    "mhsds/mhs001_mpi": {"Gender": {"1", "2", "9"}},
    "mhsds/mhs201_care_contact": {"AttendOrDNACode": {"2", "3", "4", "5", "6", "7"}},
    "mhsds/mhs401_mha_period": {"LegalStatusCode": {"01", "02", "03", "04", "19", "20"}},
    "iapt/ids001_mpi": {"Gender": {"1", "2", "9"}},
    "iapt/ids201_care_contact": {"AttendOrDNACode": {"2", "3", "4", "5", "6", "7"}},
    "ndtms/episodes": {
        "SEX": {"M", "F"},
        "RFLS": {"CJ", "SE", "GP", "HO", "OT"},
        "DRUG1": {"OPI", "CRA", "COC", "CAN", "ALC", "AMP", "OTH"},
    },
    "pnc/offences": {
        "sex": {"M", "F", "U"},
        "offence_category": {"CI", "CE", "CS", "CM"},
        "disposal_code": {"1002", "1024", "1081", "1115", "1116", "1015", "1018", "1019", "2050", "2063"},
    },
    "hmcts/cases": {
        "source_system": {"LIBRA", "XHIBIT"},
        "case_outcome": {"convicted", "acquitted", "withdrawn", "dismissed", "committed"},
    },
    "hmcts/hearings": {
        "hearing_type": {"FH", "MNTN", "PTR", "TRIAL", "SWPSR", "STPSR", "RMAND", "CS", "PBV"},
    },
}

# Text columns whose values the contract writes with leading zeros, and their width. A parquet
# writer may have stored one as a whole number ("01" as 1, an NHS number starting 0 as 9
# digits), a spreadsheet saved a CSV with it as a number; landing pads digits-only text short of
# its width back to it (io.zero_padded), or face-to-face "01" would read as "1" and match no rule.
# An NHS number is padded only from a number type: nine digits of text lost a digit (io.text_widths).
ZERO_PADDED: dict[str, dict[str, int]] = {
    "ld_referrals": {"nhs_number": 10},
    # ARRIVALTIME is HHMM; DIAG_01 the two-digit A&E diagnosis (03, 35 psychiatric).
    "hes_ae": {"NEWNHSNO": 10, "AEATTENDDISP": 2, "ARRIVALTIME": 4, "DIAG_01": 2},
    "mhsds/mhs001_mpi": {"NHSNumber": 10},
    "mhsds/mhs201_care_contact": {"ConsMechanismMH": 2},
    "mhsds/mhs401_mha_period": {"LegalStatusCode": 2},
    "iapt/ids001_mpi": {"NHSNumber": 10},
    "pnc/offences": {"ho_offence_code": 5},  # the Home Office's 5-character code, 00101 and on
}

# Identity columns: normalised in bronze (a bad value becomes null, it does not lose the row).
IDENTITY_COLUMNS: dict[str, dict[str, str]] = {
    "ld_referrals": {
        "forename": "name",
        "surname": "name",
        "date_of_birth": "dob",
        "nhs_number": "nhs",
        "pnc_id": "pnc",
        "postcode": "postcode",
    },
    "hes_ae": {"NEWNHSNO": "nhs", "DOB": "dob", "HOMEADD": "postcode"},
    "mhsds/mhs001_mpi": {"NHSNumber": "nhs", "PersonBirthDate": "dob", "Postcode": "postcode"},
    "iapt/ids001_mpi": {"NHSNumber": "nhs", "PersonBirthDate": "dob", "Postcode": "postcode"},
    "ndtms/episodes": {"FINITIAL": "initial", "SINITIAL": "initial", "DOB": "dob", "PC": "sector"},
    "pnc/offences": {
        "pnc_id": "pnc",
        "forename": "name",
        "surname": "name",
        "date_of_birth": "dob",
        "postcode": "postcode",
    },
    "hmcts/cases": {
        "defendant_forename": "name",
        "defendant_surname": "name",
        "defendant_dob": "dob",
        "defendant_postcode": "postcode",
        "pnc_id": "pnc",
    },
}


# The sources whose outcomes the panel counts by month; each may begin after the series does
# (ld_spark/cohorts.py source_starts). PNC's and HMCTS's records reach back decades.
HEALTH_SOURCES = ("hes_ae", "mhsds", "iapt", "ndtms")


def source_of(table: str) -> str:
    """`mhsds/mhs101_referral` -> `mhsds`: the data set a contract table comes from."""
    return table.split("/")[0]


def source_name(table: str) -> str:
    """`mhsds/mhs101_referral` -> `mhsds.mhs101_referral`: a table's name in source_table columns
    (record_person, linkage_quality.csv, the truth files) and in MLflow metric names."""
    return table.replace("/", ".")
