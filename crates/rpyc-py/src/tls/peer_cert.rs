//! The peer's certificate as the dict `ssl.SSLSocket.getpeercert()` returns, which is what
//! upstream's `SSLAuthenticator` hands to services as `conn._config["credentials"]`.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate, X509Name};
use x509_parser::time::ASN1Time;

/// OpenSSL's long names for the attributes certificates commonly carry (Python shows these).
fn attribute_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "commonName",
        "2.5.4.4" => "surname",
        "2.5.4.5" => "serialNumber",
        "2.5.4.6" => "countryName",
        "2.5.4.7" => "localityName",
        "2.5.4.8" => "stateOrProvinceName",
        "2.5.4.9" => "streetAddress",
        "2.5.4.10" => "organizationName",
        "2.5.4.11" => "organizationalUnitName",
        "2.5.4.12" => "title",
        "2.5.4.42" => "givenName",
        "1.2.840.113549.1.9.1" => "emailAddress",
        "0.9.2342.19200300.100.1.25" => "domainComponent",
        "0.9.2342.19200300.100.1.1" => "userId",
        _ => return None,
    })
}

/// `((("commonName", "x"),), (("organizationName", "y"),))`
fn name_tuple<'py>(py: Python<'py>, name: &X509Name<'_>) -> PyResult<Bound<'py, PyTuple>> {
    let mut rdns = Vec::new();
    for rdn in name.iter_rdn() {
        let mut pairs = Vec::new();
        for attr in rdn.iter() {
            let oid = attr.attr_type().to_id_string();
            let key = attribute_name(&oid).map(str::to_owned).unwrap_or(oid);
            let value = match attr.as_str() {
                Ok(s) => s.to_owned(),
                Err(_) => String::from_utf8_lossy(attr.attr_value().data).into_owned(),
            };
            pairs.push(PyTuple::new(py, [key, value])?);
        }
        rdns.push(PyTuple::new(py, pairs)?);
    }
    PyTuple::new(py, rdns)
}

/// `"Jan  5 09:34:43 2018 GMT"`, the format of Python's `notBefore`/`notAfter`.
fn openssl_time(t: &ASN1Time) -> String {
    let dt = t.to_datetime();
    let month = dt.month().to_string();
    format!(
        "{} {:>2} {:02}:{:02}:{:02} {} GMT",
        &month[..3],
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        dt.year()
    )
}

fn ip_text(raw: &[u8]) -> String {
    if let Ok(v4) = <[u8; 4]>::try_from(raw) {
        IpAddr::V4(Ipv4Addr::from(v4)).to_string()
    } else if let Ok(v6) = <[u8; 16]>::try_from(raw) {
        IpAddr::V6(Ipv6Addr::from(v6)).to_string()
    } else {
        format!("<invalid {} bytes>", raw.len())
    }
}

fn alt_names<'py>(
    py: Python<'py>,
    cert: &X509Certificate<'_>,
) -> PyResult<Option<Bound<'py, PyTuple>>> {
    let Ok(Some(ext)) = cert.subject_alternative_name() else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for name in &ext.value.general_names {
        let (kind, value) = match name {
            GeneralName::DNSName(s) => ("DNS", (*s).to_owned()),
            GeneralName::IPAddress(raw) => ("IP Address", ip_text(raw)),
            GeneralName::RFC822Name(s) => ("email", (*s).to_owned()),
            GeneralName::URI(s) => ("URI", (*s).to_owned()),
            _ => continue,
        };
        out.push(PyTuple::new(py, [kind.to_owned(), value])?);
    }
    Ok(Some(PyTuple::new(py, out)?))
}

/// The decoded certificate dict.
pub fn certificate_dict<'py>(py: Python<'py>, der: &[u8]) -> PyResult<Bound<'py, PyDict>> {
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|e| PyValueError::new_err(format!("peer certificate cannot be parsed: {e}")))?;
    let d = PyDict::new(py);
    d.set_item("subject", name_tuple(py, cert.subject())?)?;
    d.set_item("issuer", name_tuple(py, cert.issuer())?)?;
    d.set_item("version", cert.version().0 + 1)?;
    let serial: String = cert
        .raw_serial()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    d.set_item("serialNumber", serial)?;
    d.set_item("notBefore", openssl_time(&cert.validity().not_before))?;
    d.set_item("notAfter", openssl_time(&cert.validity().not_after))?;
    if let Some(names) = alt_names(py, &cert)? {
        d.set_item("subjectAltName", names)?;
    }
    Ok(d)
}
