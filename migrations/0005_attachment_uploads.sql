-- Finding the message that carries an upload (downloads by upload id, refusing to abort a completed upload):
-- `attachments @> '[{"upload_id": "…"}]'` through a GIN index of the attachments.

CREATE INDEX messages_attachments ON messages USING gin (attachments jsonb_path_ops);
