/**
 * Typed errors of the DICOM side. Branch on `code`; every message tells an operator what happened and what
 * to check. Messages never carry patient data (only AE titles, hosts, ports, UIDs and DICOM status codes).
 */

export type DicomErrorCode =
  /** A configuration value is missing or malformed (names the setting). */
  | 'dicom_config'
  /** The AE title is not one of the configured peers. */
  | 'dicom_unknown_peer'
  /** No PACS is configured but a PACS operation was asked for. */
  | 'dicom_no_pacs'
  /** TCP connection failed, was reset, or timed out. */
  | 'dicom_network'
  /** The peer rejected the association (wrong AE titles, not registered). */
  | 'dicom_association_rejected'
  /** The peer did not accept the presentation context the request needs (SOP class not supported). */
  | 'dicom_context_rejected'
  /** The association ended before the peer sent a final response. */
  | 'dicom_no_final_response'
  /** No response within the configured timeout. */
  | 'dicom_timeout'
  /** The peer answered with a failure status. */
  | 'dicom_failed_status'
  /** Reading or writing the DICOM state files failed. */
  | 'dicom_state_io';

export class DicomError extends Error {
  readonly code: DicomErrorCode;
  /** DICOM status of the peer's final response, when there was one. */
  readonly status?: number;
  constructor(code: DicomErrorCode, message: string, options?: { cause?: unknown; status?: number }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'DicomError';
    this.code = code;
    if (options?.status !== undefined) this.status = options.status;
  }
}

/** `0xA700` style, as dcmtk and Orthanc print statuses in their logs. */
export function hexStatus(status: number | undefined): string {
  return status === undefined ? 'none' : `0x${status.toString(16).toUpperCase().padStart(4, '0')}`;
}
