/**
 * Dates and times as DICOM writes them (DA `YYYYMMDD`, TM `HHMMSS`), in the gateway's local time zone: the
 * modality's clock and "today's worklist" are local to the site, whatever offset the manage app used.
 */

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/** DA of the instant `ms`, local time. */
export function dicomDate(ms: number): string {
  const d = new Date(ms);
  return `${d.getFullYear()}${pad(d.getMonth() + 1)}${pad(d.getDate())}`;
}

/** TM (`HHMMSS`) of the instant `ms`, local time. */
export function dicomTime(ms: number): string {
  const d = new Date(ms);
  return `${pad(d.getHours())}${pad(d.getMinutes())}${pad(d.getSeconds())}`;
}

/**
 * The last millisecond of the clinic day containing `ms`: `endHour`:59:59.999 local time that day, or the
 * next day's if `ms` is already past it.
 */
export function endOfClinicDay(ms: number, endHour = 23): number {
  const d = new Date(ms);
  d.setHours(endHour, 59, 59, 999);
  if (d.getTime() < ms) d.setDate(d.getDate() + 1);
  return d.getTime();
}
