/**
 * The syntax of twin names and values, and deviceTwin's error texts for them
 * (edge/pkg/devicetwin/dtcommon/util.go `ValidateTwinKey`/`ValidateTwinValue`, dttype/types.go).
 */

const TWIN_KEY = /^[a-zA-Z0-9\-_.,:/@#]{1,128}$/;
const TWIN_VALUE = /^[a-zA-Z0-9\-_.,:/@#]{1,512}$/;

/** A twin name: 1 to 128 of letters, digits and `- _ . , : / @ #`. */
export const validTwinKey = (key: string): boolean => TWIN_KEY.test(key);

/** A twin value: 1 to 512 of letters, digits and `- _ . , : / @ #`. */
export const validTwinValue = (value: string): boolean => TWIN_VALUE.test(value);

/** deviceTwin's answer to an update with a twin name `validTwinKey` refuses. */
export const ErrTwinKey =
  'The key of twin must only include upper or lowercase letters, number, english, and special letter - _ . , : / @ # and the length of key should be less than 128 bytes';

/** deviceTwin's answer to an update with a twin value `validTwinValue` refuses. */
export const ErrTwinValue =
  'The value of twin must only include upper or lowercase letters, number, english, and special letter - _ . , : / @ # and the length of value should be less than 512 bytes';
