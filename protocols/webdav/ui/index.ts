/**
 * The WebDAV server's browser UI: an HTML listing for GET on a collection (when the request
 * accepts text/html) and the static assets it links under UI_ASSET_PREFIX, which the server
 * serves without authentication. No framework, no external asset: everything the page needs
 * comes from the gateway itself.
 */
export { UI_ASSET_PREFIX, serveUiAsset } from './assets.ts';
export { renderCollectionPage } from './collection-page.ts';
export { newPageNonce, uiPagePolicy } from './page-policy.ts';
export type { UiEntry } from './collection-page.ts';
