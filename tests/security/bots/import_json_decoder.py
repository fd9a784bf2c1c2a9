# category: import-bypass
# attack: the submodules of an allowed package: import json.decoder, json.decoder as an attribute, json.scanner, json.JSONDecoder's scan_once; json.decoder imports re and its C scanner
# marker: PWNED-import_json_decoder
# expect: ERROR|DONE
# target: runtime
import json

MARK = "PWNED" + "-import_json_decoder"


def attempt(label, get):
    try:
        value = get()
    except Exception as exc:
        print(label, "failed:", repr(exc))
        return
    if value is not None and "(arena)" not in repr(value):
        print(MARK, label, "gave", repr(value)[:60])


def dotted():
    import json.decoder

    return json.decoder


def dotted_as():
    import json.decoder as decoder

    return decoder


attempt("import json.decoder", dotted)
attempt("import json.decoder as", dotted_as)
attempt("json.decoder", lambda: json.decoder)
attempt("getattr decoder", lambda: getattr(json, "decoder"))
attempt("json.scanner", lambda: json.scanner)
attempt("JSONDecoder", lambda: json.JSONDecoder)
attempt("scan_once", lambda: json.JSONDecoder().scan_once)
attempt("codecs", lambda: json.codecs)


def agent(observation, configuration):
    return observation.step % configuration.signs
