#!/usr/bin/env python3
"""Independent MPPS SCU (pynetdicom) for the gateway's tests.

usage: mpps_scu.py HOST PORT CALLED_AET CALLING_AET ACTION JSON
  ACTION create  JSON {"uid", "accession", "studyUid"}          → N-CREATE IN PROGRESS
  ACTION set     JSON {"uid", "status": "COMPLETED"|"DISCONTINUED", "images": n, "reason"?}
Prints one JSON line: {"status": <int or null>, "uid": ...}.
"""
import json
import sys

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import ModalityPerformedProcedureStep

host, port, called, calling, action, raw = sys.argv[1:7]
args = json.loads(raw)

ae = AE(ae_title=calling)
ae.acse_timeout = 10
ae.dimse_timeout = 10
ae.network_timeout = 10
ae.add_requested_context(ModalityPerformedProcedureStep)
assoc = ae.associate(host, int(port), ae_title=called)
if not assoc.is_established:
    print(json.dumps({"status": None, "error": "association rejected or aborted"}))
    sys.exit(0)

ds = Dataset()
if action == "create":
    step = Dataset()
    step.StudyInstanceUID = args["studyUid"]
    step.AccessionNumber = args.get("accession", "")
    step.RequestedProcedureID = args.get("accession", "")
    step.ScheduledProcedureStepID = args.get("accession", "")
    step.ScheduledProcedureStepDescription = "Screening"
    ds.ScheduledStepAttributesSequence = [step]
    ds.PatientName = "SMITH^JANE"
    ds.PatientID = "9434765919"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "F"
    ds.PerformedProcedureStepID = args.get("accession", "PPS1")
    ds.PerformedStationAETitle = calling
    ds.PerformedProcedureStepStartDate = "20260101"
    ds.PerformedProcedureStepStartTime = "100000"
    ds.PerformedProcedureStepEndDate = None
    ds.PerformedProcedureStepEndTime = None
    ds.PerformedProcedureStepStatus = "IN PROGRESS"
    ds.Modality = "MG"
    ds.PerformedSeriesSequence = []
    status, attrs = assoc.send_n_create(ds, ModalityPerformedProcedureStep, args["uid"])
else:
    ds.PerformedProcedureStepStatus = args["status"]
    ds.PerformedProcedureStepEndDate = "20260101"
    ds.PerformedProcedureStepEndTime = "101000"
    series = Dataset()
    series.SeriesInstanceUID = generate_uid()
    series.PerformingPhysicianName = ""
    series.OperatorsName = ""
    series.ProtocolName = "Screening"
    series.RetrieveAETitle = ""
    refs = []
    for _ in range(int(args.get("images", 0))):
        ref = Dataset()
        ref.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.2"
        ref.ReferencedSOPInstanceUID = generate_uid()
        refs.append(ref)
    series.ReferencedImageSequence = refs
    ds.PerformedSeriesSequence = [series]
    if args.get("reason"):
        code = Dataset()
        code.CodeValue = "110514"
        code.CodingSchemeDesignator = "DCM"
        code.CodeMeaning = args["reason"]
        ds.PerformedProcedureStepDiscontinuationReasonCodeSequence = [code]
    status, attrs = assoc.send_n_set(ds, ModalityPerformedProcedureStep, args["uid"])

assoc.release()
print(json.dumps({"status": int(status.Status) if status and "Status" in status else None, "uid": args["uid"]}))
